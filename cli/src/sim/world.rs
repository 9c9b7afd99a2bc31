//! The simulated area and its people, drawn from a seed: Friends and customers living around the
//! real town centres of the Zürich and Bern regions, and the day's bookings across the six
//! categories, priced from the backend's seeded catalog.

use super::ids::{CustomerIx, FriendIx, JobIx};
use super::model::{self, JobBehaviour};
use fastrand::Rng;
use friend_protocol::{
    Address, BookRequest, Category, Contact, FriendProfile, GeoPoint, NewFriend, Place, Service,
    Tier, Timing,
};

/// A town: centre, how far its homes spread, how many people live there (relative), and the
/// postal codes of its districts.
#[derive(Debug, Clone, Copy)]
pub struct Town {
    /// Name.
    pub name: &'static str,
    /// Centre latitude.
    pub lat: f64,
    /// Centre longitude.
    pub lon: f64,
    /// Standard deviation of homes around the centre, km.
    pub spread_km: f64,
    /// Relative population.
    pub weight: f64,
    /// First postal code.
    pub postal_from: u32,
    /// Number of postal codes.
    pub postal_count: u32,
}

const fn town(
    name: &'static str,
    lat: f64,
    lon: f64,
    spread_km: f64,
    weight: f64,
    postal_from: u32,
    postal_count: u32,
) -> Town {
    Town {
        name,
        lat,
        lon,
        spread_km,
        weight,
        postal_from,
        postal_count,
    }
}

/// The Zürich and Bern regions (town centres; weights roughly follow the population).
pub const TOWNS: [Town; 22] = [
    town("Zürich", 47.3769, 8.5417, 2.6, 40.0, 8001, 57),
    town("Winterthur", 47.4988, 8.7237, 2.0, 11.0, 8400, 12),
    town("Uster", 47.3471, 8.7209, 1.3, 3.5, 8610, 1),
    town("Baden", 47.4733, 8.3059, 1.4, 3.5, 5400, 6),
    town("Zug", 47.1662, 8.5155, 1.6, 4.0, 6300, 1),
    town("Dübendorf", 47.3972, 8.6187, 1.0, 3.0, 8600, 1),
    town("Dietikon", 47.4017, 8.4001, 1.0, 2.8, 8953, 1),
    town("Wädenswil", 47.2303, 8.6717, 1.0, 2.1, 8820, 1),
    town("Kloten", 47.4515, 8.5849, 1.0, 2.0, 8302, 1),
    town("Horgen", 47.2596, 8.5976, 1.0, 2.3, 8810, 1),
    town("Bülach", 47.5221, 8.5405, 1.0, 2.1, 8180, 1),
    town("Wetzikon", 47.3260, 8.7977, 1.0, 2.5, 8620, 1),
    town("Rapperswil", 47.2267, 8.8184, 1.1, 2.7, 8640, 1),
    town("Bern", 46.9480, 7.4474, 2.2, 14.0, 3000, 28),
    town("Köniz", 46.9241, 7.4147, 1.2, 4.2, 3098, 1),
    town("Thun", 46.7580, 7.6280, 1.5, 4.4, 3600, 8),
    town("Biel/Bienne", 47.1368, 7.2468, 1.6, 5.5, 2500, 6),
    town("Fribourg", 46.8065, 7.1620, 1.5, 3.8, 1700, 9),
    town("Burgdorf", 47.0567, 7.6276, 1.0, 1.7, 3400, 1),
    town("Langenthal", 47.2153, 7.7936, 1.0, 1.6, 4900, 1),
    town("Solothurn", 47.2088, 7.5323, 1.1, 1.7, 4500, 1),
    town("Münsingen", 46.8728, 7.5613, 0.8, 1.3, 3110, 1),
];

const FIRST_NAMES: [&str; 24] = [
    "Anna", "Luca", "Sara", "Marco", "Julia", "Noah", "Mia", "Leon", "Lea", "Elias", "Laura",
    "Nico", "Lena", "David", "Nina", "Jan", "Elena", "Tim", "Sophie", "Reto", "Andrea", "Urs",
    "Yasmin", "Matteo",
];
const LAST_NAMES: [&str; 24] = [
    "Keller",
    "Meier",
    "Brunner",
    "Rossi",
    "Schmid",
    "Müller",
    "Weber",
    "Huber",
    "Fischer",
    "Baumann",
    "Frei",
    "Gerber",
    "Zimmermann",
    "Moser",
    "Widmer",
    "Steiner",
    "Wyss",
    "Graf",
    "Bianchi",
    "Kälin",
    "Roth",
    "Bühler",
    "Suter",
    "Favre",
];
const STREETS: [&str; 12] = [
    "Bahnhofstrasse",
    "Dorfstrasse",
    "Hauptstrasse",
    "Seestrasse",
    "Kirchweg",
    "Schulstrasse",
    "Lindenstrasse",
    "Gartenweg",
    "Rosenweg",
    "Bergstrasse",
    "Feldstrasse",
    "Sonnenrain",
];

/// Popularity of the categories in bookings (and how often Friends are qualified for them).
const CATEGORY_SHARE: [(Category, f64, f64); 6] = [
    (Category::Network, 0.28, 0.70),
    (Category::Tv, 0.20, 0.60),
    (Category::Computer, 0.17, 0.60),
    (Category::Mobile, 0.17, 0.70),
    (Category::SmartHome, 0.10, 0.40),
    (Category::Audio, 0.08, 0.35),
];

/// The brand community some Friends belong to and some jobs are for.
pub const BRAND: &str = "swisscom";

/// The booked part of the virtual day: 07:00 to 22:00, in seconds from 07:00.
pub const DAY_SECS: i64 = 15 * 3600;

/// A simulated Friend.
#[derive(Debug, Clone)]
pub struct FriendSpec {
    /// Registration data.
    pub new: NewFriend,
    /// Long-polls all day (the app is in the foreground).
    pub foreground: bool,
    /// Loses connectivity for spells (tunnels) during the day.
    pub flaky: bool,
    /// On duty from this second of the day…
    pub shift_start: i64,
    /// …to this one.
    pub shift_end: i64,
    /// Offline spells: (start, duration) in seconds.
    pub spells: Vec<(i64, i64)>,
    /// The device's data key.
    pub key: [u8; 32],
}

impl FriendSpec {
    /// The profile the backend's eligibility rule sees (the id is irrelevant to it).
    pub fn profile(&self) -> FriendProfile {
        FriendProfile {
            id: friend_protocol::AccountId(uuid::Uuid::nil()),
            name: self.new.name.clone(),
            home: self.new.home,
            radius_km: self.new.radius_km,
            categories: self.new.categories.clone(),
            communities: self.new.communities.clone(),
            tier: self.new.tier,
            suspended: false,
        }
    }

    /// On duty at second `t` of the day (the tail after 22:00 counts as the last shift hour).
    pub fn on_duty(&self, t: i64) -> bool {
        t >= self.shift_start && t < self.shift_end
    }
}

/// A simulated customer.
#[derive(Debug, Clone)]
pub struct CustomerSpec {
    /// Display name.
    pub name: String,
    /// Phone number.
    pub phone: String,
    /// Home.
    pub home: GeoPoint,
    /// Home address.
    pub address: Address,
    /// The device's data key.
    pub key: [u8; 32],
}

/// A job of the day, fully drawn in advance.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Booking second of the day.
    pub at: i64,
    /// Who books it.
    pub customer: CustomerIx,
    /// The catalog service.
    pub service: Service,
    /// Slot start and length in seconds after booking, or a now-job.
    pub slot: Option<(i64, i64)>,
    /// On site or remote.
    pub place: Place,
    /// For the brand community only.
    pub brand: bool,
    /// Where (the customer's home).
    pub location: GeoPoint,
    /// What happens around the job.
    pub behaviour: JobBehaviour,
}

impl JobSpec {
    /// The booking request, with slot times on the server clock (`origin` is the server time of
    /// second 0 of the day).
    pub fn request(
        &self,
        job: JobIx,
        customer: &CustomerSpec,
        origin: chrono::DateTime<chrono::Utc>,
    ) -> BookRequest {
        let timing = match self.slot {
            Some((start, len)) => {
                let start = origin + chrono::Duration::seconds(self.at + start);
                Timing::Slot {
                    start,
                    end: start + chrono::Duration::seconds(len),
                }
            }
            None => Timing::Now,
        };
        let on_site = self.place == Place::OnSite;
        BookRequest {
            service_id: self.service.id.clone(),
            description: format!("{} (simulated job {job})", self.service.description),
            timing,
            place: self.place,
            location: Some(self.location),
            address: on_site.then(|| customer.address.clone()),
            contact: Contact {
                name: customer.name.clone(),
                phone: customer.phone.clone(),
            },
            access_notes: on_site.then(|| format!("Ring at {}", customer.name)),
            brand: self.brand.then(|| BRAND.to_owned()),
            radius_km: None,
        }
    }

    /// The eligibility-relevant part of the job.
    pub fn reach(&self) -> friend_protocol::eligibility::JobReach<'_> {
        friend_protocol::eligibility::JobReach {
            category: self.service.category,
            place: self.place,
            location: Some(self.location),
            radius_km: friend_protocol::DEFAULT_JOB_RADIUS_KM,
            brand: self.brand.then_some(BRAND),
            min_tier: self.service.min_tier,
        }
    }
}

/// Everything drawn from the seed.
#[derive(Debug, Clone)]
pub struct World {
    /// The Friends.
    pub friends: Vec<FriendSpec>,
    /// The customers.
    pub customers: Vec<CustomerSpec>,
    /// The day's jobs, by booking time.
    pub jobs: Vec<JobSpec>,
    /// The Friends' profiles as the eligibility rule sees them.
    pub profiles: Vec<FriendProfile>,
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct WorldSize {
    /// Friends.
    pub friends: usize,
    /// Customers.
    pub customers: usize,
    /// Jobs.
    pub jobs: usize,
    /// Share of long-polling Friends…
    pub foreground_share: f64,
    /// …but at most this many.
    pub foreground_max: usize,
    /// Share of Friends with offline spells.
    pub flaky_share: f64,
}

fn pick_town(rng: &mut Rng) -> &'static Town {
    let total: f64 = TOWNS.iter().map(|t| t.weight).sum();
    let mut x = rng.f64() * total;
    for t in &TOWNS {
        x -= t.weight;
        if x <= 0.0 {
            return t;
        }
    }
    &TOWNS[0]
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u = 1.0 - rng.f64();
    let v = rng.f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A point around a town centre.
fn point_near(rng: &mut Rng, town: &Town) -> GeoPoint {
    // 1° of latitude ≈ 111 km; of longitude ≈ 111 km × cos(latitude).
    for _ in 0..8 {
        let dn = normal(rng) * town.spread_km;
        let de = normal(rng) * town.spread_km;
        let lat = town.lat + dn / 111.0;
        let lon = town.lon + de / (111.0 * town.lat.to_radians().cos());
        if let Ok(p) = GeoPoint::new(lat, lon) {
            return p;
        }
    }
    GeoPoint::new(town.lat, town.lon).unwrap_or_else(|_| unreachable_point())
}

#[allow(clippy::unwrap_used)] // a constant valid point
fn unreachable_point() -> GeoPoint {
    GeoPoint::new(47.0, 8.0).unwrap()
}

fn name(rng: &mut Rng) -> String {
    format!(
        "{} {}",
        FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
        LAST_NAMES[rng.usize(..LAST_NAMES.len())]
    )
}

fn key(rng: &mut Rng) -> [u8; 32] {
    let mut k = [0u8; 32];
    for b in &mut k {
        *b = rng.u8(..);
    }
    k
}

/// Booking times over the day: a morning and an evening peak on a steady base.
fn booking_second(rng: &mut Rng) -> i64 {
    let hour = match rng.f64() {
        x if x < 0.35 => 3.0 + 1.5 * normal(rng),  // ~10:00
        x if x < 0.75 => 11.5 + 1.7 * normal(rng), // ~18:30
        _ => rng.f64() * 15.0,
    };
    ((hour.clamp(0.0, 14.99)) * 3600.0) as i64
}

fn draw_friend(rng: &mut Rng, index: usize, foreground: bool, flaky: bool) -> FriendSpec {
    let town = pick_town(rng);
    let mut categories: Vec<Category> = CATEGORY_SHARE
        .iter()
        .filter(|(_, _, qualified)| rng.f64() < *qualified)
        .map(|(c, _, _)| *c)
        .collect();
    if categories.is_empty() {
        categories.push(CATEGORY_SHARE[rng.usize(..CATEGORY_SHARE.len())].0);
    }
    let radius_km = [10, 15, 20, 25, 30, 30, 30, 40][rng.usize(..8)];
    let communities = if rng.f64() < 0.35 {
        vec![BRAND.to_owned()]
    } else {
        Vec::new()
    };
    let tier = if rng.f64() < 0.2 {
        Tier::Pro
    } else {
        Tier::Friend
    };
    let (shift_start, shift_end) = if foreground || rng.f64() < 0.2 {
        (0, DAY_SECS + 6 * 3600)
    } else {
        let start = rng.i64(0..8 * 3600);
        (start, start + rng.i64(5 * 3600..12 * 3600))
    };
    let spells = if flaky {
        (0..rng.usize(1..=4))
            .map(|_| {
                (
                    rng.i64(0..DAY_SECS),
                    60 + model::exponential(rng, 480.0) as i64,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    FriendSpec {
        new: NewFriend {
            name: format!("{} #{index}", name(rng)),
            home: point_near(rng, town),
            radius_km,
            categories,
            communities,
            tier,
        },
        foreground,
        flaky,
        shift_start,
        shift_end,
        spells,
        key: key(rng),
    }
}

fn draw_customer(rng: &mut Rng, index: usize) -> CustomerSpec {
    let town = pick_town(rng);
    let postal = town.postal_from + rng.u32(..town.postal_count);
    CustomerSpec {
        name: format!("{} #{index}", name(rng)),
        phone: format!(
            "+41 7{} {:03} {:02} {:02}",
            rng.u8(5..=9),
            rng.u16(..1000),
            rng.u8(..100),
            rng.u8(..100)
        ),
        home: point_near(rng, town),
        address: Address {
            street: format!(
                "{} {}",
                STREETS[rng.usize(..STREETS.len())],
                rng.u16(1..120)
            ),
            postal_code: postal.to_string(),
            city: town.name.to_owned(),
        },
        key: key(rng),
    }
}

fn draw_job(rng: &mut Rng, customers: &[CustomerSpec], catalog: &[Service]) -> JobSpec {
    let customer = CustomerIx(rng.usize(..customers.len().max(1)));
    let mut x = rng.f64();
    let mut category = Category::Network;
    for (c, share, _) in CATEGORY_SHARE {
        x -= share;
        if x <= 0.0 {
            category = c;
            break;
        }
    }
    // Jobs that need a Pro are rarer than the everyday services of a category.
    let services: Vec<&Service> = catalog.iter().filter(|s| s.category == category).collect();
    let weight = |s: &Service| if s.min_tier == Tier::Pro { 0.25 } else { 1.0 };
    let total: f64 = services.iter().map(|s| weight(s)).sum();
    let mut pick = rng.f64() * total;
    let mut service = None;
    for s in &services {
        pick -= weight(s);
        service = Some((*s).clone());
        if pick <= 0.0 {
            break;
        }
    }
    let service = service.or_else(|| catalog.first().cloned());
    let service = service.unwrap_or_else(|| Service {
        id: "network.router_setup".into(),
        category,
        title: "Router installation".into(),
        description: "Install the router".into(),
        orientation_price: friend_protocol::Money::chf(8900),
        duration_minutes: 60,
        min_tier: Tier::Friend,
    });
    let remote_ok = matches!(category, Category::Mobile | Category::Computer);
    let place = if remote_ok && rng.f64() < 0.2 {
        Place::Remote
    } else {
        Place::OnSite
    };
    let slot = (rng.f64() < 0.3).then(|| {
        // Mostly two to eight hours ahead; one in five one to three days ahead (a cancellation
        // 24 h before such a visit is free). On a quarter hour, one or two hours long.
        let ahead = if rng.f64() < 0.2 {
            rng.i64(26 * 3600..72 * 3600)
        } else {
            rng.i64(2 * 3600..8 * 3600)
        };
        (ahead - ahead % 900, 3600 * rng.i64(1..=2))
    });
    let brand = matches!(
        category,
        Category::Network | Category::Tv | Category::Mobile
    ) && rng.f64() < 0.15;
    let location = customer
        .of(customers)
        .map(|c| c.home)
        .unwrap_or_else(unreachable_point);
    let behaviour = model::draw_behaviour(rng, place == Place::OnSite);
    JobSpec {
        at: booking_second(rng),
        customer,
        service,
        slot,
        place,
        brand,
        location,
        behaviour,
    }
}

impl World {
    /// Draws the world for `size` from `seed`, pricing jobs from `catalog`.
    pub fn draw(seed: u64, size: WorldSize, catalog: &[Service]) -> World {
        let mut rng = Rng::with_seed(seed);
        let foreground = ((size.friends as f64 * size.foreground_share).round() as usize)
            .min(size.foreground_max)
            .min(size.friends);
        let friends: Vec<FriendSpec> = (0..size.friends)
            .map(|i| {
                let fg = i < foreground;
                let flaky = !fg && rng.f64() < size.flaky_share;
                draw_friend(&mut rng, i, fg, flaky)
            })
            .collect();
        let customers: Vec<_> = (0..size.customers.max(1))
            .map(|i| draw_customer(&mut rng, i))
            .collect();
        let mut jobs: Vec<_> = (0..size.jobs)
            .map(|_| draw_job(&mut rng, &customers, catalog))
            .collect();
        jobs.sort_by_key(|j| j.at);
        let profiles = friends.iter().map(FriendSpec::profile).collect();
        World {
            friends,
            customers,
            jobs,
            profiles,
        }
    }

    /// A job of the day.
    pub fn job(&self, job: JobIx) -> Option<&JobSpec> {
        job.of(&self.jobs)
    }

    /// A Friend.
    pub fn friend(&self, friend: FriendIx) -> Option<&FriendSpec> {
        friend.of(&self.friends)
    }

    /// A customer.
    pub fn customer(&self, customer: CustomerIx) -> Option<&CustomerSpec> {
        customer.of(&self.customers)
    }

    /// The Friends the backend offers `job` to (same rule, same code).
    pub fn eligible(&self, job: JobIx) -> Vec<FriendIx> {
        let Some(job) = self.job(job) else {
            return Vec::new();
        };
        let reach = job.reach();
        // 1° of latitude ≈ 111 km: a cheap prefilter before the exact rule.
        let max_deg = friend_protocol::eligibility::max_reach_m(reach.radius_km) / 111_000.0 + 0.01;
        self.profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                reach.place == Place::Remote || (p.home.lat() - job.location.lat()).abs() <= max_deg
            })
            .filter(|(_, p)| friend_protocol::eligibility::check(p, &reach).is_ok())
            .map(|(i, _)| FriendIx(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> WorldSize {
        WorldSize {
            friends: 60,
            customers: 20,
            jobs: 80,
            foreground_share: 0.15,
            foreground_max: 32,
            flaky_share: 0.25,
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_world() {
        let catalog = friend_backend::seed::default_catalog();
        let a = World::draw(5, size(), &catalog);
        let b = World::draw(5, size(), &catalog);
        assert_eq!(a.jobs.len(), 80);
        assert!(
            a.jobs
                .iter()
                .zip(&b.jobs)
                .all(|(x, y)| x.at == y.at && x.service.id == y.service.id)
        );
        assert_eq!(a.friends.iter().filter(|f| f.foreground).count(), 9);
    }

    #[test]
    fn bookings_are_valid_and_jobs_reach_friends() {
        let catalog = friend_backend::seed::default_catalog();
        let w = World::draw(9, size(), &catalog);
        for f in &w.friends {
            friend_protocol::validate::new_friend(&f.new).unwrap();
        }
        let origin = chrono::Utc::now() + chrono::Duration::minutes(1);
        let mut reached = 0;
        for (i, j) in w.jobs.iter().enumerate() {
            let req = j.request(JobIx(i), &w.customers[j.customer.0], origin);
            friend_protocol::validate::book_request(&req, chrono::Utc::now()).unwrap();
            if !w.eligible(JobIx(i)).is_empty() {
                reached += 1;
            }
        }
        assert!(reached > w.jobs.len() / 2, "{reached}");
    }
}
