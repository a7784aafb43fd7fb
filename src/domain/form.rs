//! `application/x-www-form-urlencoded`, decoded one way for every face: a channel's
//! publish form, the hub's publish form, and every query string the service reads (a
//! query is decoded as a form is). What a face does with repeats is its own rule, on top.

use std::fmt;

/// A field (or query parameter) whose name or value does not decode to UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The field's name, lossily rendered when the name itself is what failed.
    pub field: String,
}

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not valid UTF-8 once percent-decoded",
            self.field
        )
    }
}

impl std::error::Error for NotUtf8 {}

/// Decodes a form (or a query string without its `?`) into its (name, value) pairs, in
/// order, repeats kept: split on `&` (empty pieces skipped), then on the first `=`, `+` is
/// a space, then `%XX` decoding (a `%` not followed by two hex digits stays as it is, as
/// browsers read it), then UTF-8.
pub fn pairs(input: &[u8]) -> Result<Vec<(String, String)>, NotUtf8> {
    fields(input).collect()
}

/// Every value of the parameter `name` in `query` (without its `?`), in order. Only the
/// occurrences of `name` must decode: a parameter nobody reads refuses nothing.
pub fn values(query: &str, name: &str) -> Result<Vec<String>, NotUtf8> {
    fields(query.as_bytes())
        .filter(|field| match field {
            Ok((n, _)) => n == name,
            Err(e) => e.field == name,
        })
        .map(|field| field.map(|(_, value)| value))
        .collect()
}

/// The first value of the parameter `name` in `query`, every occurrence decoded as by
/// [`values`].
pub fn first(query: &str, name: &str) -> Result<Option<String>, NotUtf8> {
    Ok(values(query, name)?.into_iter().next())
}

fn fields(input: &[u8]) -> impl Iterator<Item = Result<(String, String), NotUtf8>> + '_ {
    input
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &[][..]),
            };
            let name = component(name).map_err(|lossy| NotUtf8 { field: lossy })?;
            let value = component(value).map_err(|_| NotUtf8 {
                field: name.clone(),
            })?;
            Ok((name, value))
        })
}

/// One decoded component. Unlike browsers, one that is not UTF-8 is refused rather than
/// given U+FFFD: an altered topic, id, token or data would silently be something else.
/// The error is a lossy rendering, to name the field.
fn component(raw: &[u8]) -> Result<String, String> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> Vec<(String, String)> {
        pairs(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_plus_is_a_space_and_an_encoded_plus_is_a_plus() {
        assert_eq!(
            decoded("data=a+b%2Bc&x"),
            vec![("data".into(), "a b+c".into()), ("x".into(), String::new())]
        );
        assert_eq!(decoded("data=100%25+sure")[0].1, "100% sure");
    }

    #[test]
    fn a_value_keeps_everything_after_the_first_equals_sign() {
        assert_eq!(decoded("a=b=c"), vec![("a".into(), "b=c".into())]);
    }

    #[test]
    fn empty_pieces_are_skipped_and_order_and_repeats_are_kept() {
        assert_eq!(
            decoded("&&b=2&&a=1&b=3&"),
            vec![
                ("b".into(), "2".into()),
                ("a".into(), "1".into()),
                ("b".into(), "3".into())
            ]
        );
    }

    #[test]
    fn a_stray_percent_stays_literal() {
        assert_eq!(
            decoded("a=50%&b=%zz"),
            vec![("a".into(), "50%".into()), ("b".into(), "%zz".into())]
        );
    }

    #[test]
    fn percent_encoded_utf8_decodes() {
        assert_eq!(decoded("t=caf%C3%A9"), vec![("t".into(), "café".into())]);
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_and_names_its_field() {
        let err = pairs(b"topic=%FF").unwrap_err();
        assert_eq!(err.field, "topic");
        assert_eq!(
            err.to_string(),
            r#""topic" is not valid UTF-8 once percent-decoded"#
        );
        assert!(pairs(b"data=\xC3").is_err());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused_rendered_lossily() {
        assert_eq!(pairs(b"d%FFta=x").unwrap_err().field, "d\u{FFFD}ta");
    }

    #[test]
    fn the_values_of_a_parameter_are_its_occurrences_in_order() {
        assert_eq!(
            values("authorization=x&topic=a&authorization=y+z", "authorization"),
            Ok(vec!["x".to_string(), "y z".to_string()])
        );
        assert_eq!(values("topic=a", "authorization"), Ok(vec![]));
        assert_eq!(values("", "token"), Ok(vec![]));
        assert_eq!(
            first("lastEventId=4&lastEventId=5", "lastEventId"),
            Ok(Some("4".into()))
        );
        assert_eq!(first("token=", "token"), Ok(Some(String::new())));
    }

    #[test]
    fn names_are_compared_once_decoded_and_case_sensitively() {
        assert_eq!(first("to%6Ben=s", "token"), Ok(Some("s".into())));
        assert_eq!(first("Token=s", "token"), Ok(None));
        // A parameter named like another is not it: `access_token` is no `token`.
        assert_eq!(first("access_token=s", "token"), Ok(None));
    }

    #[test]
    fn only_the_parameter_read_must_decode() {
        assert_eq!(
            first("token=%FF", "token"),
            Err(NotUtf8 {
                field: "token".into()
            })
        );
        assert_eq!(
            values("token=a&token=%C3", "token").unwrap_err().field,
            "token"
        );
        assert_eq!(
            first("other=%FF&t%FF=1&token=s", "token"),
            Ok(Some("s".into()))
        );
    }
}
