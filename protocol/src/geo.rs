//! Validated coordinates, great-circle distance, bounding boxes for indexed prefilters and the
//! approximate-location rule that hides a customer's exact position from Friends before they win.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Mean earth radius used by the geo crate's haversine, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
const M_PER_DEG_LAT: f64 = std::f64::consts::PI * EARTH_RADIUS_M / 180.0;

/// Why a coordinate pair was refused.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum GeoError {
    /// Latitude NaN, infinite or outside [-90, 90].
    #[error("latitude {0} is not within [-90, 90]")]
    Latitude(f64),
    /// Longitude NaN, infinite or outside [-180, 180].
    #[error("longitude {0} is not within [-180, 180]")]
    Longitude(f64),
}

/// A WGS84 point in decimal degrees, valid by construction (also when deserialized).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "RawPoint")]
pub struct GeoPoint {
    /// Latitude in degrees, −90…90.
    #[cfg_attr(feature = "openapi", schema(minimum = -90.0, maximum = 90.0))]
    lat: f64,
    /// Longitude in degrees, −180…180.
    #[cfg_attr(feature = "openapi", schema(minimum = -180.0, maximum = 180.0))]
    lon: f64,
}

#[derive(Deserialize)]
struct RawPoint {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawPoint> for GeoPoint {
    type Error = GeoError;
    fn try_from(raw: RawPoint) -> Result<Self, GeoError> {
        GeoPoint::new(raw.lat, raw.lon)
    }
}

impl GeoPoint {
    /// A point, refusing NaN, infinities and out-of-range values.
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        use geo::{Distance, Haversine, Point};
        Haversine.distance(
            Point::new(self.lon, self.lat),
            Point::new(other.lon, other.lat),
        )
    }

    /// The approximate location shown to Friends before they win a job: the centre of the coarse
    /// grid cell (~2.2 km) the point lies in — or, when the point lies within 500 m of that centre,
    /// the centre of the cell to the north (to the south in the last row). Always a cell centre, so
    /// the published point does not tell which case it is (a point moved half a cell, as before,
    /// sat on a cell edge and gave away that the true point was within 500 m of the centre below).
    /// A pure function of the point, so repeated views cannot be averaged out; always between
    /// [`APPROX_MIN_OFFSET_M`] and [`APPROX_MAX_OFFSET_M`] from the true point.
    pub fn approximate(&self) -> GeoPoint {
        let center = cell_center(self.lat, self.lon);
        if self.distance_m(&center) >= APPROX_MIN_OFFSET_M {
            return center;
        }
        let lat = if self.lat + CELL_DEG < 90.0 {
            self.lat + CELL_DEG
        } else {
            self.lat - CELL_DEG
        };
        cell_center(lat, self.lon)
    }
}

/// The approximate location's grid: rows of this many degrees of latitude.
const CELL_DEG: f64 = 0.02;

/// The centre of the grid cell containing (`lat`, `lon`). Longitude cells widen towards the poles
/// so cells stay ~square in metres.
fn cell_center(lat: f64, lon: f64) -> GeoPoint {
    let row = (lat.min(89.999_999) / CELL_DEG).floor();
    let center_lat = ((row + 0.5) * CELL_DEG).clamp(-90.0, 90.0);
    let cos = center_lat.to_radians().cos().max(0.01);
    let lon_cell = (CELL_DEG / cos).min(360.0);
    let col = ((lon + 180.0) / lon_cell).floor();
    // The last column ends at the antimeridian, narrower than the others: its centre is its middle.
    let west = -180.0 + col * lon_cell;
    let east = (west + lon_cell).min(180.0);
    GeoPoint {
        lat: center_lat,
        lon: (west + east) / 2.0,
    }
}

/// The approximate location is never closer than this to the true point.
pub const APPROX_MIN_OFFSET_M: f64 = 500.0;
/// The approximate location is never farther than this from the true point (a neighbouring cell's
/// centre: up to ~2.7 km north and ~1.6 km east or west).
pub const APPROX_MAX_OFFSET_M: f64 = 3_200.0;

/// A latitude/longitude box that contains every point within a radius of a centre, for an indexed
/// SQL prefilter. The exact distance is then checked in Rust.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundingBox {
    /// Southern edge, degrees.
    pub min_lat: f64,
    /// Northern edge, degrees.
    pub max_lat: f64,
    /// One or two longitude ranges (two when the box crosses the antimeridian).
    pub lon_ranges: Vec<(f64, f64)>,
}

impl BoundingBox {
    /// The box around `center` containing every point within `radius_m` metres.
    pub fn around(center: &GeoPoint, radius_m: f64) -> BoundingBox {
        let radius_m = radius_m.max(0.0);
        let dlat = radius_m / M_PER_DEG_LAT;
        let min_lat = center.lat - dlat;
        let max_lat = center.lat + dlat;
        let full = vec![(-180.0, 180.0)];
        if min_lat <= -90.0 || max_lat >= 90.0 {
            // A pole is inside the circle: every longitude qualifies.
            return BoundingBox {
                min_lat: min_lat.max(-90.0),
                max_lat: max_lat.min(90.0),
                lon_ranges: full,
            };
        }
        let angular = radius_m / EARTH_RADIUS_M;
        let ratio = angular.sin() / center.lat.to_radians().cos();
        if !(ratio.is_finite()) || ratio >= 1.0 {
            return BoundingBox {
                min_lat,
                max_lat,
                lon_ranges: full,
            };
        }
        // Small safety margin against rounding at the box edge.
        let dlon = ratio.asin().to_degrees() * 1.000_001 + 1e-9;
        let (lo, hi) = (center.lon - dlon, center.lon + dlon);
        let lon_ranges = if lo < -180.0 {
            vec![(lo + 360.0, 180.0), (-180.0, hi)]
        } else if hi > 180.0 {
            vec![(lo, 180.0), (-180.0, hi - 360.0)]
        } else {
            vec![(lo, hi)]
        };
        BoundingBox {
            min_lat: min_lat - 1e-9,
            max_lat: max_lat + 1e-9,
            lon_ranges,
        }
    }

    /// Whether the box contains the point.
    pub fn contains(&self, p: &GeoPoint) -> bool {
        p.lat >= self.min_lat
            && p.lat <= self.max_lat
            && self
                .lon_ranges
                .iter()
                .any(|(lo, hi)| p.lon >= *lo && p.lon <= *hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn invalid_points_are_refused() {
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert!(GeoPoint::new(90.1, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -180.5).is_err());
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":91,"lon":0}"#).is_err());
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":47.37,"lon":8.54}"#).is_ok());
    }

    #[test]
    fn zurich_to_bern_is_about_95_km() {
        let d = p(47.3769, 8.5417).distance_m(&p(46.9480, 7.4474));
        assert!((94_000.0..97_000.0).contains(&d), "{d}");
    }

    #[test]
    fn antimeridian_box_has_two_ranges() {
        let b = BoundingBox::around(&p(0.0, 179.9), 30_000.0);
        assert_eq!(b.lon_ranges.len(), 2);
        assert!(b.contains(&p(0.0, -179.9)));
        assert!(!b.contains(&p(0.0, 0.0)));
    }

    #[test]
    fn polar_box_spans_all_longitudes() {
        let b = BoundingBox::around(&p(89.9, 0.0), 30_000.0);
        assert_eq!(b.lon_ranges, vec![(-180.0, 180.0)]);
        assert!(b.contains(&p(89.95, 179.0)));
    }

    fn normalize_lon(lon: f64) -> f64 {
        if lon > 180.0 {
            lon - 360.0
        } else if lon < -180.0 {
            lon + 360.0
        } else {
            lon
        }
    }

    fn any_point() -> impl Strategy<Value = GeoPoint> {
        (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(lat, lon)| p(lat, lon))
    }

    proptest! {
        #[test]
        fn approximate_is_within_bounds_and_stable(pt in any_point()) {
            let a = pt.approximate();
            let d = pt.distance_m(&a);
            prop_assert!(d >= APPROX_MIN_OFFSET_M - 1e-6, "too close: {d} m for {pt:?} -> {a:?}");
            prop_assert!(d <= APPROX_MAX_OFFSET_M, "too far: {d} m for {pt:?} -> {a:?}");
            prop_assert_eq!(a, pt.approximate());
            prop_assert!(GeoPoint::new(a.lat(), a.lon()).is_ok());
            // Always a cell's centre: its form does not tell whether the point was moved.
            let c = cell_center(a.lat(), a.lon());
            prop_assert!((c.lat() - a.lat()).abs() < 1e-9 && (c.lon() - a.lon()).abs() < 1e-9,
                "{a:?} is not the centre of its cell {c:?}");
        }

        #[test]
        fn bounding_box_contains_every_point_in_radius(
            c in any_point(), bearing in 0.0f64..360.0, radius in 0.0f64..60_000.0, frac in 0.0f64..=1.0
        ) {
            // Walk `frac * radius` from the centre along `bearing` on the sphere.
            let d = frac * radius / EARTH_RADIUS_M;
            let (lat1, lon1, b) = (c.lat().to_radians(), c.lon().to_radians(), bearing.to_radians());
            let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * b.cos()).asin();
            let lon2 = lon1 + (b.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
            let q = p(lat2.to_degrees().clamp(-90.0, 90.0), normalize_lon(lon2.to_degrees()).clamp(-180.0, 180.0));
            if c.distance_m(&q) <= radius {
                prop_assert!(BoundingBox::around(&c, radius).contains(&q), "{c:?} r={radius} q={q:?}");
            }
        }
    }
}
