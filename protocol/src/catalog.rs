//! Service categories, provider tiers and the catalog of services with orientation prices.

use crate::money::Money;
use serde::{Deserialize, Serialize};

/// The six service categories of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// TV, receivers, streaming boxes.
    Tv,
    /// Computers and notebooks.
    Computer,
    /// Internet and home network.
    Network,
    /// Smartphones and tablets.
    Mobile,
    /// Audio and hi-fi.
    Audio,
    /// Smart-home devices.
    SmartHome,
    /// A category this build does not know.
    #[serde(other)]
    Unknown,
}

impl Category {
    /// Every known category.
    pub const ALL: [Category; 6] = [
        Category::Tv,
        Category::Computer,
        Category::Network,
        Category::Mobile,
        Category::Audio,
        Category::SmartHome,
    ];

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Tv => "tv",
            Category::Computer => "computer",
            Category::Network => "network",
            Category::Mobile => "mobile",
            Category::Audio => "audio",
            Category::SmartHome => "smart_home",
            Category::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names give [`Category::Unknown`].
    pub fn parse(s: &str) -> Category {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(Category::Unknown)
    }
}

/// Provider tier. A Pro may take every job a Friend may, plus jobs whose service requires a Pro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A vetted tech-savvy local.
    Friend,
    /// A professional provider.
    Pro,
    /// A tier this build does not know.
    #[serde(other)]
    Unknown,
}

impl Tier {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Friend => "friend",
            Tier::Pro => "pro",
            Tier::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names give [`Tier::Unknown`].
    pub fn parse(s: &str) -> Tier {
        match s {
            "friend" => Tier::Friend,
            "pro" => Tier::Pro,
            _ => Tier::Unknown,
        }
    }
}

/// One bookable service with its orientation price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Service {
    /// Stable identifier, e.g. `network.router_setup`.
    pub id: String,
    /// Category the service belongs to.
    pub category: Category,
    /// Short title shown in lists.
    pub title: String,
    /// What is included.
    pub description: String,
    /// Published orientation price; the final price is agreed on site.
    pub orientation_price: Money,
    /// Typical duration in minutes.
    pub duration_minutes: u32,
    /// Lowest tier allowed to take the job.
    pub min_tier: Tier,
}

/// The service catalog, cached by clients for offline use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalog {
    /// Changes whenever the catalog changes, so clients can skip unchanged downloads.
    pub version: u32,
    /// All services.
    pub services: Vec<Service>,
    /// What a late cancellation or a no-show owes the Friend.
    #[serde(default)]
    pub compensation: crate::visit::CompensationPolicy,
}
