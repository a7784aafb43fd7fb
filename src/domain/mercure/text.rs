//! What may appear in a topic, a matcher, an id or an event type (a *control character*
//! of `docs/mercure.md`), and `application/x-www-form-urlencoded` decoding as browsers
//! encode: the two text rules that publishing and subscribing share.

use std::fmt;

use icu_properties::props::GeneralCategory;
use icu_properties::CodePointMapData;

/// A *control character*: C0 (U+0000–U+001F), U+007F, C1 (U+0080–U+009F), or Unicode
/// category Cf (format characters such as bidirectional and zero-width controls, which are
/// invisible and allow identifiers that look alike to differ).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
        || CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format
}

/// Whether `s` contains a [control character](is_control).
pub fn has_control(s: &str) -> bool {
    s.chars().any(is_control)
}

/// A form field whose name or value does not decode to UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The field's name, lossily rendered when the name itself is what failed.
    pub field: String,
}

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "form field {:?} is not valid UTF-8", self.field)
    }
}

/// Decodes an `application/x-www-form-urlencoded` byte string into its (name, value)
/// pairs, in order: split on `&` (empty pieces skipped), then on the first `=`, `+` is a
/// space, then `%XX` decoding (a `%` not followed by two hex digits stays as it is), then
/// UTF-8. Unlike browsers, a component that is not UTF-8 is refused rather than given
/// U+FFFD: an altered topic or id would silently name something else.
pub(crate) fn form_pairs(input: &[u8]) -> Result<Vec<(String, String)>, NotUtf8> {
    input
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &[][..]),
            };
            let name = form_component(name).map_err(|lossy| NotUtf8 { field: lossy })?;
            let value = form_component(value).map_err(|_| NotUtf8 {
                field: name.clone(),
            })?;
            Ok((name, value))
        })
        .collect()
}

/// One decoded component; the error is a lossy rendering, to name the field.
fn form_component(raw: &[u8]) -> Result<String, String> {
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

    fn pairs(s: &str) -> Vec<(String, String)> {
        form_pairs(s.as_bytes()).unwrap()
    }

    #[test]
    fn c0_del_and_c1_are_control_characters() {
        for c in [
            '\0', '\n', '\r', '\u{1F}', '\u{7F}', '\u{80}', '\u{85}', '\u{9F}',
        ] {
            assert!(is_control(c), "{:?}", c);
        }
    }

    #[test]
    fn format_characters_are_control_characters() {
        // Soft hyphen, Arabic letter mark, zero-width space and joiner, left-to-right
        // mark, right-to-left override, isolates, word joiner, BOM, interlinear
        // annotation, a language tag.
        for c in [
            '\u{AD}',
            '\u{61C}',
            '\u{200B}',
            '\u{200D}',
            '\u{200E}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{FFF9}',
            '\u{E0001}',
            '\u{E007F}',
        ] {
            assert!(is_control(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn letters_spaces_and_separators_are_not_control_characters() {
        for c in [
            'a', 'é', ' ', '\u{A0}', '\u{2028}', '\u{3000}', '日', '😀', '%', '~',
        ] {
            assert!(!is_control(c), "U+{:04X}", c as u32);
        }
        assert!(!has_control("https://example.com/books/1?x=é"));
        assert!(has_control("https://example.com/\u{200B}books"));
    }

    #[test]
    fn a_plus_is_a_space_and_an_encoded_plus_is_a_plus() {
        assert_eq!(
            pairs("data=a+b%2Bc&x"),
            vec![("data".into(), "a b+c".into()), ("x".into(), String::new())]
        );
    }

    #[test]
    fn a_value_keeps_everything_after_the_first_equals_sign() {
        assert_eq!(pairs("a=b=c"), vec![("a".into(), "b=c".into())]);
    }

    #[test]
    fn empty_pieces_are_skipped_and_order_is_kept() {
        assert_eq!(
            pairs("&&b=2&&a=1&"),
            vec![("b".into(), "2".into()), ("a".into(), "1".into())]
        );
    }

    #[test]
    fn a_stray_percent_stays_literal() {
        assert_eq!(
            pairs("a=50%&b=%zz"),
            vec![("a".into(), "50%".into()), ("b".into(), "%zz".into())]
        );
    }

    #[test]
    fn percent_encoded_utf8_decodes() {
        assert_eq!(pairs("t=caf%C3%A9"), vec![("t".into(), "café".into())]);
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_and_names_its_field() {
        let err = form_pairs(b"topic=%FF").unwrap_err();
        assert_eq!(err.field, "topic");
        assert!(form_pairs(b"data=\xC3").is_err());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        assert!(form_pairs(b"%FFx=1").is_err());
    }
}
