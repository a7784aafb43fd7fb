//! RFC 6570 URI templates as 0.x topic selectors (§5.1): a template matches a topic that
//! is, in full, one of its expansions.
//!
//! The template is parsed by the RFC's grammar (level 4: every operator, prefix and explode
//! modifiers) and compiled into one regular expression for the set of all its expansions,
//! whatever values (undefined, strings, lists, associative arrays) the variables are given.
//! So `{id}` admits a run of unreserved characters and `%XX` triplets, and also commas (a
//! list value expands to `a,b`, as RFC 6570 and the reference hub have it).
//! A Pike VM evaluates it in time linear in the topic, so a crafted selector cannot make
//! matching slow. Compiling is bounded too: a template whose expression, as text or
//! compiled, would exceed the matcher's allowance ([`super::budget`]) is refused (in
//! practice: hundreds of distinct variables in one expression, or a prefix of hundreds).
//!
//! Two deliberate leniencies: literal text matches verbatim (an IRI literal such as `é`
//! is not required to appear percent-encoded), and `%XX` triplets match in either case.
//! A prefix modifier (`{v:3}`) counts each percent-encoded character as one, accepting up to
//! four triplets for it (a UTF-8 sequence) without checking that they form valid UTF-8.

use regex_syntax::escape;

use super::budget::{Allowance, Bounded, BuildFailure};

/// Why a string is not a URI template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TemplateError {
    /// Not a template by RFC 6570's grammar.
    Syntax,
    /// A template, but its expression (its text, or its compiled form) exceeds the
    /// allowance.
    TooLarge,
}

/// Compiles `template` into an anchored expression matching exactly its expansions. An
/// expression whose text alone is longer than the allowance could not compile within it
/// (a program takes more bytes than its text), so it is refused before it is built: the
/// text of distinct variables grows with the square of their count.
pub(super) fn compile(template: &str, allowance: &mut Allowance) -> Result<Bounded, TemplateError> {
    let limit = allowance.left();
    let mut pattern = String::from("^(?:");
    for part in parse(template)? {
        let budget = limit.saturating_sub(pattern.len());
        let text = match part {
            Part::Literal(text) => Some(escape(&text)),
            Part::Expression(op, vars) => expression_pattern(op, &vars, budget),
        };
        match text {
            Some(text) if text.len() <= budget => pattern.push_str(&text),
            _ => return Err(TemplateError::TooLarge),
        }
    }
    pattern.push_str(")$");
    allowance.regex(&pattern).map_err(|failure| match failure {
        BuildFailure::TooLarge => TemplateError::TooLarge,
        // Made from the grammar's parts, each escaped, it always parses; were it not to,
        // the selector compares exactly, as any text that is no template does.
        BuildFailure::Syntax => TemplateError::Syntax,
    })
}

/// The eight operators (RFC 6570 §3.2.2–§3.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    PathSegment,
    PathParameter,
    Query,
    QueryContinuation,
}

/// How an operator expands (RFC 6570 Appendix A's table).
struct Rules {
    first: &'static str,
    sep: &'static str,
    named: bool,
    /// What follows a named variable whose value is empty.
    ifemp: &'static str,
    /// `+` and `#` keep reserved characters and existing `%XX` triplets as they are.
    allow_reserved: bool,
}

impl Operator {
    fn rules(self) -> Rules {
        let (first, sep, named, ifemp, allow_reserved) = match self {
            Operator::Simple => ("", ",", false, "", false),
            Operator::Reserved => ("", ",", false, "", true),
            Operator::Fragment => ("#", ",", false, "", true),
            Operator::Label => (".", ".", false, "", false),
            Operator::PathSegment => ("/", "/", false, "", false),
            Operator::PathParameter => (";", ";", true, "", false),
            Operator::Query => ("?", "&", true, "=", false),
            Operator::QueryContinuation => ("&", "&", true, "=", false),
        };
        Rules {
            first,
            sep,
            named,
            ifemp,
            allow_reserved,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    None,
    /// `:n`, 1 ≤ n ≤ 9999: at most n characters of a string value.
    Prefix(u16),
    /// `*`: a composite value's members become separate items.
    Explode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VarSpec {
    name: String,
    modifier: Modifier,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Expression(Operator, Vec<VarSpec>),
}

/// Splits a template into literals and expressions by RFC 6570 §2's grammar.
fn parse(template: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match c {
            '{' => {
                let end = rest.find('}').ok_or(TemplateError::Syntax)?;
                let body = &rest[1..end];
                if body.contains('{') {
                    return Err(TemplateError::Syntax);
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(parse_expression(body)?);
                rest = &rest[end + 1..];
            }
            '%' => {
                let triplet = rest.get(..3).filter(|t| is_pct_encoded(t.as_bytes()));
                literal.push_str(triplet.ok_or(TemplateError::Syntax)?);
                rest = &rest[3..];
            }
            c if is_literal(c) => {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
            _ => return Err(TemplateError::Syntax),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

fn parse_expression(body: &str) -> Result<Part, TemplateError> {
    let mut chars = body.chars();
    let op = match chars.next() {
        Some('+') => Operator::Reserved,
        Some('#') => Operator::Fragment,
        Some('.') => Operator::Label,
        Some('/') => Operator::PathSegment,
        Some(';') => Operator::PathParameter,
        Some('?') => Operator::Query,
        Some('&') => Operator::QueryContinuation,
        // Reserved for future extensions (op-reserve).
        Some('=' | ',' | '!' | '@' | '|') => return Err(TemplateError::Syntax),
        _ => Operator::Simple,
    };
    let list = if op == Operator::Simple {
        body
    } else {
        chars.as_str()
    };
    let vars = list
        .split(',')
        .map(parse_varspec)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Part::Expression(op, vars))
}

fn parse_varspec(spec: &str) -> Result<VarSpec, TemplateError> {
    let (name, modifier) = if let Some(name) = spec.strip_suffix('*') {
        (name, Modifier::Explode)
    } else if let Some((name, digits)) = spec.split_once(':') {
        let valid = (1..=4).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit());
        let n = digits.parse().ok().filter(|_| valid);
        (name, Modifier::Prefix(n.ok_or(TemplateError::Syntax)?))
    } else {
        (spec, Modifier::None)
    };
    if !is_varname(name) {
        return Err(TemplateError::Syntax);
    }
    Ok(VarSpec {
        name: name.to_string(),
        modifier,
    })
}

/// `varname = varchar *( ["."] varchar )`, `varchar = ALPHA / DIGIT / "_" / pct-encoded`.
fn is_varname(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes[0] == b'.' || bytes[bytes.len() - 1] == b'.' {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' if bytes[i - 1] == b'.' => return false,
            b'.' | b'_' => i += 1,
            b if b.is_ascii_alphanumeric() => i += 1,
            b'%' if is_pct_encoded(&bytes[i..bytes.len().min(i + 3)]) => i += 3,
            _ => return false,
        }
    }
    true
}

fn is_pct_encoded(t: &[u8]) -> bool {
    matches!(t, [b'%', h, l] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
}

/// RFC 6570's `literals` (with erratum 6937, which admits `'`).
fn is_literal(c: char) -> bool {
    match c as u32 {
        0x21
        | 0x23
        | 0x24
        | 0x26..=0x3B
        | 0x3D
        | 0x3F..=0x5B
        | 0x5D
        | 0x5F
        | 0x61..=0x7A
        | 0x7E => true,
        // ucschar and iprivate.
        0xA0..=0xD7FF | 0xE000..=0xFDCF | 0xFDF0..=0xFFEF => true,
        c @ 0x10000.. => c & 0xFFFF <= 0xFFFD && !(0xE0000..=0xE0FFF).contains(&c),
        _ => false,
    }
}

const UNRESERVED: &str = r"A-Za-z0-9\-._~";
const RESERVED: &str = r":/?#\[\]@!$&'()*+,;=";
const TRIPLET: &str = "%[0-9A-Fa-f]{2}";

/// One character of an encoded value: an allowed character or a `%XX` triplet.
fn atom(allow_reserved: bool) -> String {
    let reserved = if allow_reserved { RESERVED } else { "" };
    format!("(?:[{UNRESERVED}{reserved}]|{TRIPLET})")
}

/// One character of a value before encoding, as it appears once encoded (for prefixes).
fn encoded_char(allow_reserved: bool) -> String {
    let reserved = if allow_reserved { RESERVED } else { "" };
    format!("(?:[{UNRESERVED}{reserved}]|(?:{TRIPLET}){{1,4}})")
}

/// The expansions of one expression: nothing when every variable is undefined, else the
/// operator's first character and the defined variables, in order, joined by its separator.
/// `None` when the text would be longer than `budget`.
fn expression_pattern(op: Operator, vars: &[VarSpec], budget: usize) -> Option<String> {
    let rules = op.rules();
    let items: Vec<String> = vars.iter().map(|v| variable_pattern(&rules, v)).collect();
    let sep = escape(rules.sep);
    let defined = if items.iter().all(|item| *item == items[0]) {
        // One item language: one to `items.len()` of them.
        format!("{0}(?:{sep}{0}){{0,{1}}}", items[0], items.len() - 1)
    } else {
        // Any non-empty ordered subset: choose the first defined variable, then each later
        // one is there or not. The text grows with the square of the count: measure first.
        let optional = |item: &String| item.len() + sep.len() + "(?:)?".len();
        let later: usize = items.iter().map(optional).sum();
        let (mut size, mut rest) = (0, later);
        for item in &items {
            rest -= optional(item);
            size += item.len() + rest + 1;
        }
        if size > budget {
            return None;
        }
        (0..items.len())
            .map(|first| {
                let later: String = items[first + 1..]
                    .iter()
                    .map(|item| format!("(?:{sep}{item})?"))
                    .collect();
                format!("{}{later}", items[first])
            })
            .collect::<Vec<_>>()
            .join("|")
    };
    Some(format!("(?:{}(?:{defined}))?", escape(rules.first)))
}

/// The expansions of one defined variable (RFC 6570 Appendix A), over every kind of value.
fn variable_pattern(rules: &Rules, var: &VarSpec) -> String {
    let a = atom(rules.allow_reserved);
    let sep = escape(rules.sep);
    // A string, a list or an associative array: encoded members joined by ",".
    let joined = format!("{a}*(?:,{a}*)*");
    let name = escape(&var.name);
    let empty_allowed = !rules.ifemp.is_empty();
    match (rules.named, var.modifier) {
        (false, Modifier::None) => joined,
        (false, Modifier::Prefix(n)) => format!("{}{{0,{n}}}", encoded_char(rules.allow_reserved)),
        (false, Modifier::Explode) => {
            // List items, or name=value pairs, joined by the separator.
            format!("(?:{a}*(?:{sep}{a}*)*|{a}*={a}*(?:{sep}{a}*={a}*)*)")
        }
        (true, Modifier::None) if empty_allowed => format!("{name}={joined}"),
        (true, Modifier::None) => format!("{name}(?:={joined})?"),
        (true, Modifier::Prefix(n)) => {
            let c = encoded_char(rules.allow_reserved);
            if empty_allowed {
                format!("{name}={c}{{0,{n}}}")
            } else {
                format!("{name}(?:={c}{{1,{n}}})?")
            }
        }
        (true, Modifier::Explode) => {
            // Each list item is `name[=value]`; each pair of an associative array is
            // `key[=value]` (the variable's name does not appear), so any key matches.
            let item = if empty_allowed {
                format!("{a}*={a}*")
            } else {
                format!("{a}*(?:={a}+)?")
            };
            format!("{item}(?:{sep}{item})*")
        }
    }
}

#[cfg(test)]
mod tests;
