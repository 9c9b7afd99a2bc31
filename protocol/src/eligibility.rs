//! Who is offered a job (SPEC §6): category, brand community and tier must match, and an on-site
//! job must lie within the smaller of the job's radius and the Friend's travel radius, measured from
//! the Friend's registered home point. Remote jobs skip the distance rule.

use crate::{Category, FriendProfile, GeoPoint, NotEligibleReason, Place, Tier};

/// The parts of a job eligibility depends on.
#[derive(Debug, Clone, Copy)]
pub struct JobReach<'a> {
    /// Service category.
    pub category: Category,
    /// On site or remote.
    pub place: Place,
    /// Exact job location (on-site jobs).
    pub location: Option<GeoPoint>,
    /// Broadcast radius in km.
    pub radius_km: u32,
    /// Brand community, if any.
    pub brand: Option<&'a str>,
    /// Lowest tier allowed.
    pub min_tier: Tier,
}

/// Whether `friend` may see and take the job, or the first rule that excludes them.
pub fn check(friend: &FriendProfile, job: &JobReach<'_>) -> Result<(), NotEligibleReason> {
    if friend.suspended {
        return Err(NotEligibleReason::Suspended);
    }
    if !friend.categories.contains(&job.category) {
        return Err(NotEligibleReason::Category);
    }
    if let Some(brand) = job.brand
        && !friend.communities.iter().any(|c| c == brand)
    {
        return Err(NotEligibleReason::Community);
    }
    if friend.tier == Tier::Unknown || job.min_tier == Tier::Unknown || friend.tier < job.min_tier {
        return Err(NotEligibleReason::Tier);
    }
    if job.place == Place::Remote {
        return Ok(());
    }
    let Some(location) = job.location else {
        return Err(NotEligibleReason::Distance);
    };
    let reach_m = f64::from(job.radius_km.min(friend.radius_km)) * 1000.0;
    if friend.home.distance_m(&location) > reach_m {
        return Err(NotEligibleReason::Distance);
    }
    Ok(())
}

/// The largest distance at which any Friend can be eligible for an on-site job, in metres — the
/// radius of any prefilter that looks for the Friends a job concerns.
pub fn max_reach_m(job_radius_km: u32) -> f64 {
    f64::from(job_radius_km.min(crate::MAX_FRIEND_RADIUS_KM)) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountId;

    fn friend() -> FriendProfile {
        FriendProfile {
            id: AccountId::random(),
            name: "Anna".into(),
            home: GeoPoint::new(47.3769, 8.5417).unwrap(),
            radius_km: 15,
            categories: vec![Category::Network, Category::Tv],
            communities: vec!["swisscom".into()],
            tier: Tier::Friend,
            suspended: false,
        }
    }

    fn job(lat: f64, lon: f64) -> JobReach<'static> {
        JobReach {
            category: Category::Network,
            place: Place::OnSite,
            location: Some(GeoPoint::new(lat, lon).unwrap()),
            radius_km: 30,
            brand: None,
            min_tier: Tier::Friend,
        }
    }

    #[test]
    fn a_suspended_friend_is_eligible_for_nothing() {
        let f = FriendProfile {
            suspended: true,
            ..friend()
        };
        assert_eq!(check(&friend(), &job(47.40, 8.55)), Ok(()));
        assert_eq!(
            check(&f, &job(47.40, 8.55)),
            Err(NotEligibleReason::Suspended)
        );
    }

    #[test]
    fn rules_in_order() {
        let f = friend();
        assert_eq!(check(&f, &job(47.40, 8.55)), Ok(()));
        // Winterthur is ~19 km away: outside the friend's own 15 km.
        assert_eq!(
            check(&f, &job(47.4988, 8.7237)),
            Err(NotEligibleReason::Distance)
        );
        assert_eq!(
            check(
                &f,
                &JobReach {
                    category: Category::Audio,
                    ..job(47.40, 8.55)
                }
            ),
            Err(NotEligibleReason::Category)
        );
        assert_eq!(
            check(
                &f,
                &JobReach {
                    brand: Some("sunrise"),
                    ..job(47.40, 8.55)
                }
            ),
            Err(NotEligibleReason::Community)
        );
        assert_eq!(
            check(
                &f,
                &JobReach {
                    brand: Some("swisscom"),
                    ..job(47.40, 8.55)
                }
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &f,
                &JobReach {
                    min_tier: Tier::Pro,
                    ..job(47.40, 8.55)
                }
            ),
            Err(NotEligibleReason::Tier)
        );
        let far_remote = JobReach {
            place: Place::Remote,
            location: None,
            ..job(0.0, 0.0)
        };
        assert_eq!(check(&f, &far_remote), Ok(()));
    }

    #[test]
    fn job_radius_limits_too() {
        let mut f = friend();
        f.radius_km = 50;
        let j = JobReach {
            radius_km: 5,
            ..job(47.4988, 8.7237)
        };
        assert_eq!(check(&f, &j), Err(NotEligibleReason::Distance));
    }
}
