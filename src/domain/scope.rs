//! OAuth scopes: SailPoint's four trigger scopes, hookgate's own, and the catch-all.

pub const SUBSCRIPTIONS_READ: &str = "sp:trigger-service-subscriptions:read";
pub const SUBSCRIPTIONS_MANAGE: &str = "sp:trigger-service-subscriptions:manage";
pub const INVOCATION_STATUS_READ: &str = "sp:trigger-service-invocation-status:read";
pub const INVOCATION_STATUS_MANAGE: &str = "sp:trigger-service-invocation-status:manage";
pub const TRIGGERS_MANAGE: &str = "hookgate:triggers:manage";
pub const EVENTS_PUBLISH: &str = "hookgate:events:publish";
pub const DEAD_LETTERS_MANAGE: &str = "hookgate:dead-letters:manage";
pub const SOURCES_MANAGE: &str = "hookgate:sources:manage";
pub const AUDIT_READ: &str = "hookgate:audit:read";
/// SailPoint's "all scopes" grant.
pub const ALL: &str = "sp:scopes:all";

pub const KNOWN: &[&str] = &[
    SUBSCRIPTIONS_READ,
    SUBSCRIPTIONS_MANAGE,
    INVOCATION_STATUS_READ,
    INVOCATION_STATUS_MANAGE,
    TRIGGERS_MANAGE,
    EVENTS_PUBLISH,
    DEAD_LETTERS_MANAGE,
    SOURCES_MANAGE,
    AUDIT_READ,
    ALL,
];

/// A set of granted scopes, stored space-separated as OAuth writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a space- or comma-separated list; unknown scopes are an error naming them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut scopes: Vec<String> = Vec::new();
        for s in text.split([' ', ',']).filter(|s| !s.is_empty()) {
            if !KNOWN.contains(&s) {
                return Err(format!("unknown scope '{s}'; known scopes: {}", KNOWN.join(", ")));
            }
            if !scopes.iter().any(|have| have == s) {
                scopes.push(s.to_owned());
            }
        }
        Ok(Self(scopes))
    }

    pub fn allows(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope || s == ALL)
    }

    /// The scopes of `requested` that `self` grants; all of `self` when nothing was requested.
    pub fn narrow(&self, requested: &Scopes) -> Result<Scopes, String> {
        if requested.0.is_empty() {
            return Ok(self.clone());
        }
        match requested.0.iter().find(|s| !self.allows(s)) {
            Some(s) => Err(format!("scope '{s}' is not granted to this client")),
            None => Ok(requested.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_scopes_grant_everything() {
        let s = Scopes::parse(ALL).unwrap();
        assert!(s.allows(SUBSCRIPTIONS_MANAGE) && s.allows(TRIGGERS_MANAGE));
    }

    #[test]
    fn unknown_scopes_are_refused_by_name() {
        let err = Scopes::parse("sp:trigger-service-subscriptions:read bogus").unwrap_err();
        assert!(err.contains("'bogus'"), "{err}");
    }

    #[test]
    fn narrowing_refuses_scopes_the_client_lacks() {
        let granted = Scopes::parse(SUBSCRIPTIONS_READ).unwrap();
        assert!(granted.narrow(&Scopes::parse(TRIGGERS_MANAGE).unwrap()).is_err());
        let n = granted.narrow(&Scopes::parse("").unwrap()).unwrap();
        assert_eq!(n.to_string(), SUBSCRIPTIONS_READ);
    }
}
