//! First-start data: the service catalog (orientation prices in CHF across the six categories) and,
//! for development, a handful of Friends around Zurich and Bern plus two customers with fixed tokens.

use crate::AppState;
use crate::error::AppError;
use crate::store::{accounts, catalog};
use friend_protocol::geo::GeoError;
use friend_protocol::{
    AccountId, Category, GeoPoint, Money, NewCustomer, NewFriend, Role, Service, Tier,
};

/// A seeded development account and its token.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// Account id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// Friend or customer.
    pub role: Role,
    /// Bearer token (fixed, `dev-…`, development only).
    pub token: String,
}

/// The catalog a new database starts with. Prices follow the platform's published orientation
/// prices (e.g. a router installation at CHF 89 instead of CHF 225 by a carrier technician).
pub fn default_catalog() -> Vec<Service> {
    use Category::*;
    let s =
        |id: &str, category, title: &str, description: &str, chf: i64, minutes, min_tier| Service {
            id: id.into(),
            category,
            title: title.into(),
            description: description.into(),
            orientation_price: Money::chf(chf * 100),
            duration_minutes: minutes,
            min_tier,
        };
    vec![
        s(
            "tv.setup",
            Tv,
            "TV installation",
            "Connect the TV, search channels, set up streaming apps",
            89,
            60,
            Tier::Friend,
        ),
        s(
            "tv.receiver",
            Tv,
            "TV box connection",
            "Connect and configure a TV box or receiver",
            69,
            45,
            Tier::Friend,
        ),
        s(
            "tv.wall_mount",
            Tv,
            "TV wall mounting",
            "Mount the TV on the wall and hide the cables",
            149,
            90,
            Tier::Pro,
        ),
        s(
            "computer.setup",
            Computer,
            "New computer setup",
            "Set up a new computer and move data from the old one",
            129,
            120,
            Tier::Friend,
        ),
        s(
            "computer.help",
            Computer,
            "Computer troubleshooting",
            "Find and fix a problem with a computer or notebook",
            89,
            60,
            Tier::Friend,
        ),
        s(
            "computer.printer",
            Computer,
            "Printer setup",
            "Connect a printer to the computers and the Wi-Fi",
            59,
            45,
            Tier::Friend,
        ),
        s(
            "network.router_setup",
            Network,
            "Router installation",
            "Install the router, set up Wi-Fi and connect the devices",
            89,
            60,
            Tier::Friend,
        ),
        s(
            "network.wifi_extend",
            Network,
            "Wi-Fi extension",
            "Improve coverage with a mesh system or repeaters",
            119,
            90,
            Tier::Friend,
        ),
        s(
            "network.cabling",
            Network,
            "Home network cabling",
            "Lay network cables and fit sockets",
            199,
            180,
            Tier::Pro,
        ),
        s(
            "mobile.setup",
            Mobile,
            "Smartphone setup",
            "Set up a new smartphone and transfer contacts, photos and apps",
            69,
            60,
            Tier::Friend,
        ),
        s(
            "mobile.tablet",
            Mobile,
            "Tablet setup",
            "Set up a tablet for the family",
            59,
            45,
            Tier::Friend,
        ),
        s(
            "mobile.lesson",
            Mobile,
            "Smartphone lesson",
            "One hour of personal help with the smartphone",
            49,
            60,
            Tier::Friend,
        ),
        s(
            "audio.hifi",
            Audio,
            "Hi-fi setup",
            "Connect and tune a hi-fi system",
            89,
            60,
            Tier::Friend,
        ),
        s(
            "audio.multiroom",
            Audio,
            "Multiroom audio",
            "Set up speakers in several rooms",
            99,
            90,
            Tier::Friend,
        ),
        s(
            "smart_home.starter",
            SmartHome,
            "Smart home starter",
            "Install a hub, lights and plugs and set up the app",
            129,
            120,
            Tier::Friend,
        ),
        s(
            "smart_home.thermostat",
            SmartHome,
            "Smart thermostat",
            "Install and configure smart thermostats",
            99,
            60,
            Tier::Friend,
        ),
        s(
            "smart_home.camera",
            SmartHome,
            "Security cameras",
            "Install security cameras and set up recording",
            149,
            120,
            Tier::Pro,
        ),
    ]
}

fn dev_friends() -> Result<Vec<(&'static str, NewFriend)>, GeoError> {
    let f =
        |name: &str, lat, lon, radius_km, categories: Vec<Category>, communities: &[&str], tier| {
            Ok::<_, GeoError>(NewFriend {
                name: name.into(),
                home: GeoPoint::new(lat, lon)?,
                radius_km,
                categories,
                communities: communities.iter().map(|c| c.to_string()).collect(),
                tier,
            })
        };
    Ok(vec![
        (
            "dev-friend-anna",
            f(
                "Anna Keller",
                47.3769,
                8.5417,
                30,
                Category::ALL.to_vec(),
                &["swisscom"],
                Tier::Friend,
            )?,
        ),
        (
            "dev-friend-luca",
            f(
                "Luca Meier",
                47.3900,
                8.5150,
                20,
                vec![Category::Network, Category::Computer, Category::Mobile],
                &[],
                Tier::Friend,
            )?,
        ),
        (
            "dev-friend-sara",
            f(
                "Sara Brunner",
                47.4988,
                8.7237,
                25,
                vec![Category::Tv, Category::Audio, Category::SmartHome],
                &["swisscom"],
                Tier::Friend,
            )?,
        ),
        (
            "dev-friend-marco",
            f(
                "Marco Rossi",
                46.9480,
                7.4474,
                30,
                Category::ALL.to_vec(),
                &["swisscom"],
                Tier::Pro,
            )?,
        ),
        (
            "dev-friend-julia",
            f(
                "Julia Schmid",
                46.9500,
                7.4400,
                15,
                vec![Category::Mobile, Category::Computer],
                &[],
                Tier::Friend,
            )?,
        ),
    ])
}

/// Seeds a new database: always the catalog, and the dev accounts when `dev` is set and there are no
/// accounts yet. Returns the dev accounts created now.
pub(crate) fn ensure(state: &AppState, dev: bool) -> Result<Option<Vec<DevAccount>>, AppError> {
    let now = state.clock.now();
    state.db.write_now(move |tx| {
        if catalog::catalog(tx)?.services.is_empty() {
            catalog::replace(tx, &default_catalog())?;
        }
        if !dev || !accounts::is_empty(tx)? {
            return Ok(None);
        }
        let mut created = Vec::new();
        let friends = dev_friends()
            .map_err(|e| AppError::new(friend_protocol::ErrorCode::Internal, e.to_string()))?;
        for (token, friend) in friends {
            let id = AccountId::random();
            accounts::insert_friend(tx, id, &friend, &crate::auth::hash_token(token), now)?;
            created.push(DevAccount {
                id,
                name: friend.name,
                role: Role::Friend,
                token: token.into(),
            });
        }
        for (token, name) in [
            ("dev-customer-heidi", "Heidi Muster"),
            ("dev-customer-peter", "Peter Graf"),
        ] {
            let id = AccountId::random();
            accounts::insert_customer(
                tx,
                id,
                &NewCustomer { name: name.into() },
                &crate::auth::hash_token(token),
                now,
            )?;
            created.push(DevAccount {
                id,
                name: name.into(),
                role: Role::Customer,
                token: token.into(),
            });
        }
        Ok(Some(created))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_data_is_valid() {
        for (_, f) in dev_friends().unwrap() {
            friend_protocol::validate::new_friend(&f).unwrap();
        }
        let catalog = default_catalog();
        for c in Category::ALL {
            assert!(
                catalog.iter().any(|s| s.category == c),
                "no service for {c:?}"
            );
        }
    }
}
