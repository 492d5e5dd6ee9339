//! Okta's wire types: users, groups and the error body, only the fields directory sync
//! reads.

use serde::Deserialize;

/// A user as Okta lists it (only the fields directory sync reads).
#[derive(Debug, Clone, Deserialize)]
pub struct OktaUser {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "lastUpdated", default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub profile: UserProfile,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserProfile {
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A group as Okta lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct OktaGroup {
    pub id: String,
    #[serde(default)]
    pub profile: GroupProfile,
    #[serde(rename = "lastUpdated", default)]
    pub last_updated: Option<String>,
    #[serde(rename = "lastMembershipUpdated", default)]
    pub last_membership_updated: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupProfile {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OktaErrorBody {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(rename = "errorSummary", default)]
    summary: String,
}

impl OktaErrorBody {
    pub(super) fn describe(&self) -> String {
        match (self.code.is_empty(), self.summary.is_empty()) {
            (true, true) => "no error details".into(),
            (true, false) => self.summary.clone(),
            (false, true) => self.code.clone(),
            (false, false) => format!("{} ({})", self.summary, self.code),
        }
    }
}

pub(super) async fn okta_error(response: reqwest::Response) -> OktaErrorBody {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}
