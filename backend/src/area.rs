//! Area tiles: a coarse grid over the globe that open-job changes are broadcast to.
//!
//! A change of an open job is written once, to the tile its location lies in (remote jobs to
//! [`REMOTE`]), instead of once per eligible Friend: with 50 Friends in reach, the per-Friend rows
//! were ~225 WAL page writes per accept (BENCHMARKS.md, P7). A Friend's delta sync reads the
//! tiles its reach box touches and keeps the jobs the eligibility rule lets through.
//!
//! Rows are [`ROW_DEG`] degrees of latitude high (~28 km). Each row is cut into as many columns
//! as keep a tile about as wide as it is high at that latitude, so a Friend reads a bounded number
//! of tiles anywhere, poles included (at most 30 for the largest radius, 50 km).

use friend_protocol::GeoPoint;
use friend_protocol::geo::BoundingBox;

/// The tile remote jobs are broadcast to: every Friend reads it.
pub const REMOTE: i64 = -1;

/// Height of a tile row, degrees of latitude.
const ROW_DEG: f64 = 0.25;
/// Rows from the south pole to the north pole.
const ROWS: i64 = (180.0 / ROW_DEG) as i64;
/// Columns of a row on the equator (the most any row has).
const MAX_COLS: i64 = (360.0 / ROW_DEG) as i64;

fn row_of(lat: f64) -> i64 {
    (((lat + 90.0) / ROW_DEG).floor() as i64).clamp(0, ROWS - 1)
}

/// Columns of `row`: proportional to the circumference at the row's middle latitude.
fn cols(row: i64) -> i64 {
    let mid = -90.0 + (row as f64 + 0.5) * ROW_DEG;
    ((MAX_COLS as f64 * mid.to_radians().cos()).floor() as i64).clamp(1, MAX_COLS)
}

fn col_of(row: i64, lon: f64) -> i64 {
    let n = cols(row);
    (((lon + 180.0) / 360.0 * n as f64).floor() as i64).clamp(0, n - 1)
}

fn id(row: i64, col: i64) -> i64 {
    row * MAX_COLS + col
}

/// The tile a location lies in.
pub fn tile_of(p: &GeoPoint) -> i64 {
    let row = row_of(p.lat());
    id(row, col_of(row, p.lon()))
}

/// Every tile holding a point within `radius_m` of `center`, plus [`REMOTE`]: what a Friend with
/// that reach reads. Monotone floors on both sides make "point in the box ⇒ its tile listed" exact.
pub fn tiles_around(center: &GeoPoint, radius_m: f64) -> Vec<i64> {
    let bbox = BoundingBox::around(center, radius_m);
    let mut tiles = vec![REMOTE];
    for row in row_of(bbox.min_lat)..=row_of(bbox.max_lat) {
        for (lo, hi) in &bbox.lon_ranges {
            for col in col_of(row, *lo)..=col_of(row, *hi) {
                tiles.push(id(row, col));
            }
        }
    }
    tiles.sort_unstable();
    tiles.dedup();
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn a_friend_reads_few_tiles_anywhere() {
        for lat in [-90.0, -89.9, -60.0, 0.0, 47.37, 80.0, 89.99, 90.0] {
            for lon in [-180.0, -179.99, 0.0, 8.54, 179.99, 180.0] {
                let n = tiles_around(&p(lat, lon), 50_000.0).len();
                assert!(n <= 40, "{n} tiles at ({lat}, {lon})");
            }
        }
        // Zurich with a 15 km radius: a handful.
        assert!(tiles_around(&p(47.3769, 8.5417), 15_000.0).len() <= 10);
    }

    #[test]
    fn edges_and_poles_map_into_the_grid() {
        for (lat, lon) in [
            (-90.0, -180.0),
            (90.0, 180.0),
            (0.0, 180.0),
            (89.999, -179.999),
        ] {
            let t = tile_of(&p(lat, lon));
            assert!((0..ROWS * MAX_COLS).contains(&t), "{t}");
        }
        assert_ne!(tile_of(&p(47.37, 8.54)), tile_of(&p(46.95, 7.44)));
    }

    proptest! {
        // The property the broadcast relies on: every point a Friend can reach lies in a tile
        // that Friend reads, across the antimeridian and near the poles too.
        #[test]
        fn reachable_points_lie_in_read_tiles(
            lat in -90.0f64..=90.0, lon in -180.0f64..=180.0,
            bearing in 0.0f64..360.0, frac in 0.0f64..=1.0, radius_km in 0u32..=50,
        ) {
            let home = p(lat, lon);
            let radius_m = f64::from(radius_km) * 1000.0;
            let target = destination(&home, bearing, radius_m * frac * 0.999_999);
            prop_assume!(home.distance_m(&target) <= radius_m);
            let tiles = tiles_around(&home, radius_m);
            prop_assert!(tiles.contains(&tile_of(&target)), "{:?} -> {:?}", home, target);
        }
    }

    /// The point `dist_m` from `from` along `bearing_deg` (great circle).
    fn destination(from: &GeoPoint, bearing_deg: f64, dist_m: f64) -> GeoPoint {
        let d = dist_m / friend_protocol::geo::EARTH_RADIUS_M;
        let (lat1, lon1, b) = (
            from.lat().to_radians(),
            from.lon().to_radians(),
            bearing_deg.to_radians(),
        );
        let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * b.cos()).asin();
        let lon2 = lon1 + (b.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
        let lon2 = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        p(lat2.to_degrees().clamp(-90.0, 90.0), lon2)
    }
}
