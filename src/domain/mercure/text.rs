//! What may appear in a topic, a matcher, an id or an event type (a *control character*
//! of `docs/mercure.md`): the text rule that publishing and subscribing share. (Forms and
//! queries are decoded by `domain::form`, for every face.)

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
