//! Accounts: Friends (and Pros) with their registered home area, and customers.

use crate::{AccountId, Category, GeoPoint, Tier};
use serde::{Deserialize, Serialize};

/// Largest travel radius a Friend may register, in kilometres.
pub const MAX_FRIEND_RADIUS_KM: u32 = 50;

/// What kind of account a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A provider (Friend or Pro).
    Friend,
    /// A customer.
    Customer,
    /// A role this build does not know.
    #[serde(other)]
    Unknown,
}

/// A provider's profile as the backend knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FriendProfile {
    /// Account id.
    pub id: AccountId,
    /// Display name shown to customers after accept.
    pub name: String,
    /// Registered home area; eligibility distances are measured from here, never from a live position.
    pub home: GeoPoint,
    /// Registered travel radius in kilometres (1…50).
    pub radius_km: u32,
    /// Categories the Friend is qualified for.
    pub categories: Vec<Category>,
    /// Brand communities the Friend belongs to (e.g. a carrier's sub-community).
    pub communities: Vec<String>,
    /// Friend or Pro.
    pub tier: Tier,
    /// Suspended by the platform: no offers, no pushes, accepts refused (`suspended`); jobs held
    /// stay held.
    #[serde(default)]
    pub suspended: bool,
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerProfile {
    /// Account id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
}

/// Who the caller is (`GET /v1/me`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Me {
    /// A provider.
    Friend(FriendProfile),
    /// A customer.
    Customer(CustomerProfile),
    /// A role this build does not know.
    #[serde(other)]
    Unknown,
}

/// Admin request to create a Friend account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewFriend {
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub name: String,
    /// Registered home point.
    pub home: GeoPoint,
    /// Travel radius in kilometres (1…50).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub radius_km: u32,
    /// Qualified categories (at least one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub categories: Vec<Category>,
    /// Brand communities (at most 16, each 1…120 characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub communities: Vec<String>,
    /// Friend or Pro.
    pub tier: Tier,
}

/// Admin request to create a customer account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCustomer {
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub name: String,
}

/// A created account and its bearer token. The token is shown once; the backend keeps only a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedAccount {
    /// The new account's id.
    pub id: AccountId,
    /// Friend or customer.
    pub role: Role,
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
}

/// An admin change to a Friend's qualifications and reach (`POST /v1/admin/friends/{id}/profile`);
/// fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FriendUpdate {
    /// Qualified categories (at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<Category>>,
    /// Brand communities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<String>>,
    /// Friend or Pro.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Travel radius in km (1…50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub radius_km: Option<u32>,
}

impl FriendUpdate {
    /// `profile` with this update applied.
    pub fn apply(&self, profile: &FriendProfile) -> FriendProfile {
        FriendProfile {
            categories: self
                .categories
                .clone()
                .unwrap_or_else(|| profile.categories.clone()),
            communities: self
                .communities
                .clone()
                .unwrap_or_else(|| profile.communities.clone()),
            tier: self.tier.unwrap_or(profile.tier),
            radius_km: self.radius_km.unwrap_or(profile.radius_km),
            ..profile.clone()
        }
    }
}
