//! Identity's rules: what a valid e-mail, password, display name, role set and client name
//! are. Parsed once at the boundary into types that cannot hold an invalid value.

use mercato_kernel::auth::{ROLE_ADMIN, ROLE_CUSTOMER};
use mercato_kernel::error::FieldViolations;
use mercato_kernel::validate::{Text, TextError};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD: usize = 10;
/// Longest accepted password (Argon2 work is bounded by input size).
pub const MAX_PASSWORD: usize = 128;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// A syntactically valid e-mail address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address: one `@`, a non-empty local part of at most 64 characters, a domain
    /// with a dot and no empty labels, no whitespace, at most 254 characters in all.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > 254 {
            return Err("must be at most 254 characters");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("is not an e-mail address");
        };
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err("is not an e-mail address");
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the length rules (kept only until hashed).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks the length in characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if len < MIN_PASSWORD {
            return Err(format!("must be at least {MIN_PASSWORD} characters"));
        }
        if len > MAX_PASSWORD {
            return Err(format!("must be at most {MAX_PASSWORD} characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password's bytes, for hashing.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A display name: trimmed, one line of 1 to [`MAX_DISPLAY_NAME`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let name = raw.trim();
        Text::one_line(MAX_DISPLAY_NAME).check(name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalised e-mail.
    pub email: Email,
    /// Password to hash.
    pub password: Password,
    /// Display name.
    pub display_name: DisplayName,
}

impl NewUser {
    /// Parses every field, reporting all problems at once.
    pub fn parse(email: &str, password: &str, display_name: &str) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let email = Email::parse(email)
            .map_err(|e| violations.add("email", e))
            .ok();
        let password = Password::parse(password)
            .map_err(|e| violations.add("password", e))
            .ok();
        let display_name = DisplayName::parse(display_name)
            .map_err(|e| violations.add("display_name", e.to_string()))
            .ok();
        match (email, password, display_name) {
            (Some(email), Some(password), Some(display_name)) => Ok(Self {
                email,
                password,
                display_name,
            }),
            _ => Err(violations),
        }
    }
}

/// Roles a user may hold.
pub const USER_ROLES: [&str; 2] = [ROLE_CUSTOMER, ROLE_ADMIN];

/// Parses a complete role set for a user: non-empty, known roles only, no duplicates kept.
pub fn parse_user_roles(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.is_empty() {
        return Err("at least one role is required".into());
    }
    let mut roles: Vec<String> = Vec::with_capacity(raw.len());
    for role in raw {
        if !USER_ROLES.contains(&role.as_str()) {
            return Err(format!(
                "unknown role {role:?}; expected one of {USER_ROLES:?}"
            ));
        }
        if !roles.contains(role) {
            roles.push(role.clone());
        }
    }
    Ok(roles)
}

/// Parses a service-account name: 1 to 100 of letters, digits, '-', '_'.
pub fn parse_client_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("is required");
    }
    if name.len() > 100 {
        return Err("must be at most 100 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("may contain only letters, digits, '-' and '_'");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@exa..mple.com",
            "ada@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.com", "b".repeat(250))).is_err());
    }

    #[test]
    fn passwords_need_ten_to_128_characters() {
        assert!(Password::parse("123456789").is_err());
        assert!(Password::parse("1234567890").is_ok());
        assert!(
            Password::parse("ééééééééé").is_err(),
            "length counts characters, not bytes"
        );
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn a_new_user_reports_every_bad_field() {
        let err = NewUser::parse("nope", "short", "  ").unwrap_err();
        let status = err.into_status();
        assert!(status.message().contains("email"));
        assert!(status.message().contains("password"));
        assert!(status.message().contains("display_name"));
    }

    #[test]
    fn roles_must_be_known() {
        assert_eq!(
            parse_user_roles(&["admin".into(), "admin".into()]).unwrap(),
            vec!["admin"]
        );
        assert!(parse_user_roles(&[]).is_err());
        assert!(
            parse_user_roles(&["service".into()]).is_err(),
            "users cannot become service accounts"
        );
    }

    #[test]
    fn client_names_are_restricted() {
        assert!(parse_client_name("order-service").is_ok());
        assert!(parse_client_name("order service").is_err());
        assert!(parse_client_name("").is_err());
    }
}
