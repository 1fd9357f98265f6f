//! Bounded text without control characters, and the idempotency key (text on one line).
//!
//! Lengths count characters (Unicode scalar values), not bytes. Control characters (Unicode
//! `Cc`: U+0000–U+001F, U+007F–U+009F) are refused because they are never content: stored,
//! they break the one-line displays, logs and labels the text ends up in, and a value one
//! service accepts must not be refused by the next one it is passed to (a cancellation
//! reason becomes a refund reason). Text of several lines keeps its line feeds and tabs; a
//! carriage return is refused there too (a bare one rewrites what a terminal shows, and
//! clients send JSON line breaks as `\n`).
//!
//! Trimming is the caller's choice: check the trimmed value where that is what is stored.

use super::REQUIRED;
use crate::error::FieldViolations;

/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// A client's idempotency key: required, at most [`MAX_IDEMPOTENCY_KEY_CHARS`] characters,
/// one line. The same rule everywhere a key is taken (basket checkout, PlaceOrder, Charge,
/// Refund, LookupCharge), so a key one service accepts is never refused by the next.
pub const IDEMPOTENCY_KEY: Text = Text::one_line(MAX_IDEMPOTENCY_KEY_CHARS);

/// What a text field may hold: how long it may be, whether it may be empty, whether it may
/// span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    max_chars: usize,
    required: bool,
    multi_line: bool,
}

impl Text {
    /// One line of 1 to `max_chars` characters, no control character at all (names, titles,
    /// ids, keys, address lines). Required; see [`Text::optional`].
    pub const fn one_line(max_chars: usize) -> Self {
        Self {
            max_chars,
            required: true,
            multi_line: false,
        }
    }

    /// Up to `max_chars` characters of several lines: line feeds and tabs are allowed, other
    /// control characters are not (descriptions, bodies, reasons). Optional; see
    /// [`Text::required`].
    pub const fn multi_line(max_chars: usize) -> Self {
        Self {
            max_chars,
            required: false,
            multi_line: true,
        }
    }

    /// The same rule, with the empty text allowed.
    pub const fn optional(self) -> Self {
        Self {
            required: false,
            ..self
        }
    }

    /// The same rule, with the empty text refused.
    pub const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    /// Longest text allowed, in characters.
    pub const fn max_chars(self) -> usize {
        self.max_chars
    }

    /// Whether `raw` follows the rule, and if not, the first thing wrong with it.
    pub fn check(self, raw: &str) -> Result<(), TextError> {
        if raw.is_empty() {
            return if self.required {
                Err(TextError::Missing)
            } else {
                Ok(())
            };
        }
        // Counting stops one past the bound: a huge value costs no more than a valid one.
        if raw.chars().nth(self.max_chars).is_some() {
            return Err(TextError::TooLong {
                max_chars: self.max_chars,
            });
        }
        let allowed = |c: char| self.multi_line && matches!(c, '\n' | '\t');
        if raw.chars().any(|c| c.is_control() && !allowed(c)) {
            return Err(if self.multi_line {
                TextError::ControlCharacterInLines
            } else {
                TextError::ControlCharacter
            });
        }
        Ok(())
    }
}

/// What is wrong with a text; its `Display` is the violation's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty where the rule requires text.
    #[error("{}", REQUIRED)]
    Missing,
    /// More characters than the rule allows.
    #[error("must be at most {max_chars} characters")]
    TooLong {
        /// Longest text allowed.
        max_chars: usize,
    },
    /// A control character in one-line text.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A control character other than a line feed or a tab in text of several lines.
    #[error("must not contain control characters other than line breaks and tabs")]
    ControlCharacterInLines,
}

/// Checks `raw` against `rule`, recording its first problem under `field`; whether it passed.
pub fn text(v: &mut FieldViolations, field: &str, raw: &str, rule: Text) -> bool {
    match rule.check(raw) {
        Ok(()) => true,
        Err(err) => {
            v.add(field, err.to_string());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::described;

    #[test]
    fn one_line_text_is_required_bounded_and_free_of_control_characters() {
        let rule = Text::one_line(5);
        assert_eq!(rule.check("a"), Ok(()));
        assert_eq!(rule.check("abcde"), Ok(()));
        assert_eq!(rule.check("ééééé"), Ok(()), "characters, not bytes");
        assert_eq!(rule.check(""), Err(TextError::Missing));
        assert_eq!(
            rule.check("abcdef"),
            Err(TextError::TooLong { max_chars: 5 })
        );
        for control in [
            '\0', '\t', '\n', '\r', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}',
        ] {
            assert_eq!(
                rule.check(&format!("a{control}b")),
                Err(TextError::ControlCharacter),
                "{control:?}"
            );
        }
        assert_eq!(rule.optional().check(""), Ok(()));
        assert_eq!(
            rule.optional().check("a\tb"),
            Err(TextError::ControlCharacter)
        );
    }

    #[test]
    fn multi_line_text_keeps_line_feeds_and_tabs_only() {
        let rule = Text::multi_line(10);
        assert_eq!(rule.check(""), Ok(()));
        assert_eq!(rule.check("a\nb\tc\n"), Ok(()));
        for control in ['\r', '\0', '\u{7}', '\u{1b}', '\u{9b}'] {
            assert_eq!(
                rule.check(&format!("a{control}")),
                Err(TextError::ControlCharacterInLines),
                "{control:?}"
            );
        }
        assert_eq!(
            rule.check(&"\n".repeat(11)),
            Err(TextError::TooLong { max_chars: 10 })
        );
        assert_eq!(rule.required().check(""), Err(TextError::Missing));
    }

    #[test]
    fn length_is_judged_before_characters() {
        assert_eq!(
            Text::one_line(2).check("\u{7}\u{7}\u{7}"),
            Err(TextError::TooLong { max_chars: 2 })
        );
        assert_eq!(
            Text::one_line(3).check(&"x".repeat(4 * 1024 * 1024)),
            Err(TextError::TooLong { max_chars: 3 })
        );
    }

    #[test]
    fn each_problem_has_one_wording() {
        let mut v = FieldViolations::new();
        assert!(text(&mut v, "ok", "fine", Text::one_line(10)));
        assert!(!text(&mut v, "name", "", Text::one_line(10)));
        assert!(!text(
            &mut v,
            "title",
            "x".repeat(11).as_str(),
            Text::one_line(10)
        ));
        assert!(!text(&mut v, "sku", "a\tb", Text::one_line(10)));
        assert!(!text(&mut v, "body", "a\u{7}", Text::multi_line(10)));
        assert_eq!(
            described(v),
            [
                "name: is required",
                "title: must be at most 10 characters",
                "sku: must not contain control characters",
                "body: must not contain control characters other than line breaks and tabs",
            ]
        );
    }

    #[test]
    fn an_idempotency_key_is_one_line_of_1_to_128_characters() {
        assert_eq!(IDEMPOTENCY_KEY.check("checkout-1"), Ok(()));
        assert_eq!(IDEMPOTENCY_KEY.check(&"k".repeat(128)), Ok(()));
        assert_eq!(IDEMPOTENCY_KEY.check(""), Err(TextError::Missing));
        assert_eq!(
            IDEMPOTENCY_KEY.check(&"k".repeat(129)),
            Err(TextError::TooLong { max_chars: 128 })
        );
        assert_eq!(
            IDEMPOTENCY_KEY.check("key\n"),
            Err(TextError::ControlCharacter)
        );
        assert_eq!(IDEMPOTENCY_KEY.optional().check(""), Ok(()));
        assert_eq!(IDEMPOTENCY_KEY.max_chars(), MAX_IDEMPOTENCY_KEY_CHARS);
    }
}
