//! `google.api.http` path templates (the grammar of `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```

/// A template that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    Any,
    /// `**`: zero or more segments (last only).
    Rest,
}

/// A variable: the field path it binds and the segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// `product.id` → `["product", "id"]`.
    pub field_path: Vec<String>,
    start: usize,
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// The values a request path gives the template's variables, in template order.
pub type Bindings = Vec<(Vec<String>, String)>;

impl PathTemplate {
    /// Parses `template`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |reason: &str| TemplateError {
            template: template.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with '/'"))?;
        // The verb is after the last ':' that is outside braces.
        let mut depth = 0usize;
        let mut verb_at = None;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.checked_sub(1).ok_or_else(|| fail("unbalanced '}'"))?,
                ':' if depth == 0 => verb_at = Some(i),
                _ => {}
            }
        }
        if depth != 0 {
            return Err(fail("unbalanced '{'"));
        }
        let (path, verb) = match verb_at {
            Some(i) => (&rest[..i], Some(rest[i + 1..].to_owned())),
            None => (rest, None),
        };
        if verb.as_deref().is_some_and(str::is_empty) {
            return Err(fail("empty verb"));
        }
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = path;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| fail("unclosed variable"))?;
                let body = &inner[..close];
                let (field, pattern) = body.split_once('=').unwrap_or((body, "*"));
                let field_path: Vec<String> = field.split('.').map(str::to_owned).collect();
                if field_path.iter().any(|p| !is_ident(p)) {
                    return Err(fail("variable names a field path of identifiers"));
                }
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(segment(part).ok_or_else(|| fail("bad variable pattern"))?);
                }
                variables.push(Variable {
                    field_path,
                    start,
                    end: segments.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let part = &chars[..end];
                if part.contains('{') {
                    return Err(fail("a variable must be a whole segment"));
                }
                segments.push(segment(part).ok_or_else(|| fail("empty segment"))?);
                chars = &chars[end..];
            }
            if let Some(next) = chars.strip_prefix('/') {
                if next.is_empty() {
                    return Err(fail("trailing '/'"));
                }
                chars = next;
            } else if !chars.is_empty() {
                return Err(fail("a variable must be a whole segment"));
            }
        }
        if segments
            .iter()
            .enumerate()
            .any(|(i, s)| *s == Segment::Rest && i + 1 != segments.len())
        {
            return Err(fail("'**' must be the last segment"));
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
            variables,
            verb,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Its variables.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Its custom verb.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// How specific the template is: more literal segments and a verb win over variables,
    /// so `/v1/orders/{id}:watch` is tried before `/v1/orders/{id}`.
    pub fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let no_rest = self.segments.iter().all(|s| *s != Segment::Rest);
        (self.verb.is_some(), literals, usize::from(no_rest))
    }

    /// The OpenAPI form: `/v1/products/{product.id}`, `/v1/basket:checkout`.
    pub fn openapi_path(&self) -> String {
        let names: Vec<String> = self
            .variables
            .iter()
            .map(|var| var.field_path.join("."))
            .collect();
        self.openapi_path_named(&names)
    }

    /// The template with every variable as `{}`: templates of one shape are the same path
    /// to OpenAPI 3.1, whatever their variables are called.
    pub fn shape(&self) -> String {
        self.openapi_path_named(&vec![String::new(); self.variables.len()])
    }

    /// The OpenAPI form with the variables called `names`, in template order.
    pub fn openapi_path_named(&self, names: &[String]) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.segments.len() {
            out.push('/');
            if let Some((index, var)) = self
                .variables
                .iter()
                .enumerate()
                .find(|(_, v)| v.start == i)
            {
                out.push('{');
                out.push_str(names.get(index).map_or("", String::as_str));
                out.push('}');
                i = var.end.max(i + 1);
                continue;
            }
            match &self.segments[i] {
                Segment::Literal(l) => out.push_str(l),
                Segment::Any => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
            i += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// The variable values when `path` (not yet percent-decoded) matches.
    pub fn matches(&self, path: &str) -> Option<Bindings> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let has_rest = self.segments.last() == Some(&Segment::Rest);
        let fixed = self.segments.len() - usize::from(has_rest);
        if parts.len() < fixed || (!has_rest && parts.len() != fixed) {
            return None;
        }
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(l) if l != part => return None,
                Segment::Any if part.is_empty() => return None,
                _ => {}
            }
        }
        let mut bindings = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let end = if has_rest && var.end == self.segments.len() {
                parts.len()
            } else {
                var.end
            };
            let single = end == var.start + 1;
            let value = parts[var.start..end]
                .iter()
                // A one-segment variable may hold an encoded '/': decode it all; a
                // multi-segment one keeps "%2F" so its segments stay distinguishable.
                .map(|p| percent_decode(p, single))
                .collect::<Option<Vec<_>>>()?
                .join("/");
            bindings.push((var.field_path.clone(), value));
        }
        Some(bindings)
    }
}

fn segment(part: &str) -> Option<Segment> {
    match part {
        "" => None,
        "*" => Some(Segment::Any),
        "**" => Some(Segment::Rest),
        literal => Some(Segment::Literal(literal.to_owned())),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8 or an escape is broken.
pub fn percent_decode(input: &str, decode_slash: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte == b'/' && !decode_slash {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(template)
            .unwrap()
            .matches(path)
            .map(|b| b.into_iter().map(|(f, v)| (f.join("."), v)).collect())
    }

    #[test]
    fn literal_templates_match_only_themselves() {
        assert_eq!(bind("/v1/products", "/v1/products"), Some(vec![]));
        assert_eq!(bind("/v1/products", "/v1/products/x"), None);
        assert_eq!(bind("/v1/products", "/v1/product"), None);
    }

    #[test]
    fn variables_bind_one_segment_and_decode_it() {
        assert_eq!(
            bind("/v1/products/{id}", "/v1/products/p%201"),
            Some(vec![("id".into(), "p 1".into())])
        );
        assert_eq!(bind("/v1/products/{id}", "/v1/products/"), None);
        assert_eq!(bind("/v1/products/{id}", "/v1/products/a/b"), None);
    }

    #[test]
    fn nested_field_paths_are_bound() {
        assert_eq!(
            bind("/v1/products/{product.id}", "/v1/products/abc"),
            Some(vec![("product.id".into(), "abc".into())])
        );
    }

    #[test]
    fn custom_verbs_are_split_from_the_last_segment() {
        let t = "/v1/orders/{id}:watch";
        assert_eq!(
            bind(t, "/v1/orders/o1:watch"),
            Some(vec![("id".into(), "o1".into())])
        );
        assert_eq!(bind(t, "/v1/orders/o1"), None);
        assert_eq!(bind(t, "/v1/orders/o1:cancel"), None);
        assert_eq!(
            bind("/v1/basket:checkout", "/v1/basket:checkout"),
            Some(vec![])
        );
        assert_eq!(bind("/v1/basket:checkout", "/v1/basket"), None);
    }

    #[test]
    fn variable_patterns_can_span_segments() {
        assert_eq!(
            bind("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b%2F2"),
            Some(vec![("name".into(), "shelves/s1/books/b%2F2".into())])
        );
        assert_eq!(
            bind("/v1/files/{path=**}", "/v1/files/a/b/c"),
            Some(vec![("path".into(), "a/b/c".into())])
        );
    }

    #[test]
    fn verbs_and_literals_make_a_template_more_specific() {
        let verb = PathTemplate::parse("/v1/orders/{id}:watch").unwrap();
        let plain = PathTemplate::parse("/v1/orders/{id}").unwrap();
        assert!(verb.specificity() > plain.specificity());
        assert_eq!(verb.openapi_path(), "/v1/orders/{id}:watch");
        assert_eq!(
            PathTemplate::parse("/v1/{name=shelves/*}")
                .unwrap()
                .openapi_path(),
            "/v1/{name}"
        );
        let nested = PathTemplate::parse("/v1/products/{product.id}").unwrap();
        let plain = PathTemplate::parse("/v1/products/{id}").unwrap();
        assert_eq!(nested.shape(), plain.shape());
        assert_eq!(nested.shape(), "/v1/products/{}");
        assert_eq!(
            nested.openapi_path_named(&["id".to_owned()]),
            "/v1/products/{id}"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "v1/x",
            "/v1/{id",
            "/v1/x/",
            "/v1/{a-b}",
            "/v1/**/x",
            "/v1/x:",
            "/v1/a{id}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
