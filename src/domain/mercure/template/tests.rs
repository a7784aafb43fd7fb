use super::*;
use crate::domain::mercure::budget::{MatcherBudget, MatcherLimits};

/// Compiles within the default allowance of one matcher.
fn compile(template: &str) -> Result<Bounded, TemplateError> {
    let mut budget = MatcherBudget::new(MatcherLimits::default());
    let mut result = None;
    let _ = budget.charge(|allowance| {
        result = Some(super::compile(template, allowance));
        Ok(())
    });
    result.expect("charged")
}

fn matches(template: &str, topic: &str) -> bool {
    compile(template)
        .unwrap_or_else(|e| panic!("{template}: {e:?}"))
        .is_match(topic)
}

/// RFC 6570 §3.2's examples, every operator and modifier, with the RFC's variables.
#[test]
fn every_example_expansion_of_rfc_6570_matches_its_template() {
    let examples = [
        ("{count}", "one,two,three"),
        ("{count*}", "one,two,three"),
        ("{/count}", "/one,two,three"),
        ("{/count*}", "/one/two/three"),
        ("{;count}", ";count=one,two,three"),
        ("{;count*}", ";count=one;count=two;count=three"),
        ("{?count}", "?count=one,two,three"),
        ("{?count*}", "?count=one&count=two&count=three"),
        ("{&count*}", "&count=one&count=two&count=three"),
        ("{var}", "value"),
        ("{hello}", "Hello%20World%21"),
        ("{half}", "50%25"),
        ("O{empty}X", "OX"),
        ("O{undef}X", "OX"),
        ("{x,y}", "1024,768"),
        ("{x,hello,y}", "1024,Hello%20World%21,768"),
        ("?{x,empty}", "?1024,"),
        ("?{x,undef}", "?1024"),
        ("?{undef,y}", "?768"),
        ("{var:3}", "val"),
        ("{var:30}", "value"),
        ("{list}", "red,green,blue"),
        ("{list*}", "red,green,blue"),
        ("{keys}", "semi,%3B,dot,.,comma,%2C"),
        ("{keys*}", "semi=%3B,dot=.,comma=%2C"),
        ("{+var}", "value"),
        ("{+hello}", "Hello%20World!"),
        ("{+half}", "50%25"),
        ("{base}index", "http%3A%2F%2Fexample.com%2Fhome%2Findex"),
        ("{+base}index", "http://example.com/home/index"),
        ("O{+empty}X", "OX"),
        ("{+path}/here", "/foo/bar/here"),
        ("here?ref={+path}", "here?ref=/foo/bar"),
        ("up{+path}{var}/here", "up/foo/barvalue/here"),
        ("{+x,hello,y}", "1024,Hello%20World!,768"),
        ("{+path,x}/here", "/foo/bar,1024/here"),
        ("{+path:6}/here", "/foo/b/here"),
        ("{+list}", "red,green,blue"),
        ("{+keys}", "semi,;,dot,.,comma,,"),
        ("{+keys*}", "semi=;,dot=.,comma=,"),
        ("{#var}", "#value"),
        ("{#hello}", "#Hello%20World!"),
        ("{#half}", "#50%25"),
        ("foo{#empty}", "foo#"),
        ("foo{#undef}", "foo"),
        ("{#x,hello,y}", "#1024,Hello%20World!,768"),
        ("{#path,x}/here", "#/foo/bar,1024/here"),
        ("{#path:6}/here", "#/foo/b/here"),
        ("{#list}", "#red,green,blue"),
        ("{#keys*}", "#semi=;,dot=.,comma=,"),
        ("{.who}", ".fred"),
        ("{.who,who}", ".fred.fred"),
        ("{.half,who}", ".50%25.fred"),
        ("www{.dom*}", "www.example.com"),
        ("X{.var}", "X.value"),
        ("X{.empty}", "X."),
        ("X{.undef}", "X"),
        ("X{.var:3}", "X.val"),
        ("X{.list}", "X.red,green,blue"),
        ("X{.list*}", "X.red.green.blue"),
        ("X{.keys}", "X.semi,%3B,dot,.,comma,%2C"),
        ("X{.keys*}", "X.semi=%3B.dot=..comma=%2C"),
        ("X{.empty_keys}", "X"),
        ("{/who}", "/fred"),
        ("{/who,who}", "/fred/fred"),
        ("{/half,who}", "/50%25/fred"),
        ("{/who,dub}", "/fred/me%2Ftoo"),
        ("{/var,empty}", "/value/"),
        ("{/var,undef}", "/value"),
        ("{/var,x}/here", "/value/1024/here"),
        ("{/var:1,var}", "/v/value"),
        ("{/list*,path:4}", "/red/green/blue/%2Ffoo"),
        ("{/keys*}", "/semi=%3B/dot=./comma=%2C"),
        ("{;who}", ";who=fred"),
        ("{;half}", ";half=50%25"),
        ("{;empty}", ";empty"),
        ("{;v,empty,who}", ";v=6;empty;who=fred"),
        ("{;v,bar,who}", ";v=6;who=fred"),
        ("{;x,y,empty}", ";x=1024;y=768;empty"),
        ("{;hello:5}", ";hello=Hello"),
        ("{;list*}", ";list=red;list=green;list=blue"),
        ("{;keys}", ";keys=semi,%3B,dot,.,comma,%2C"),
        ("{;keys*}", ";semi=%3B;dot=.;comma=%2C"),
        ("{?who}", "?who=fred"),
        ("{?x,y,empty}", "?x=1024&y=768&empty="),
        ("{?x,y,undef}", "?x=1024&y=768"),
        ("{?var:3}", "?var=val"),
        ("{?list*}", "?list=red&list=green&list=blue"),
        ("{?keys*}", "?semi=%3B&dot=.&comma=%2C"),
        ("{&who}", "&who=fred"),
        ("?fixed=yes{&x}", "?fixed=yes&x=1024"),
        ("{&x,y,empty}", "&x=1024&y=768&empty="),
        ("{&keys}", "&keys=semi,%3B,dot,.,comma,%2C"),
    ];
    for (template, expansion) in examples {
        assert!(matches(template, expansion), "{template} vs {expansion}");
    }
}

#[test]
fn a_simple_variable_admits_no_reserved_character_but_the_list_comma() {
    let t = "https://example.com/books/{id}";
    assert!(matches(t, "https://example.com/books/ab12"));
    assert!(matches(t, "https://example.com/books/"));
    assert!(matches(t, "https://example.com/books/a,b"));
    for topic in [
        "https://example.com/books/a/b",
        "https://example.com/bar/ab12",
        "https://example.com/books/a?b",
        "https://example.com/books/a b",
        "https://example.com/books/a%2",
        "https://example.com/books/ab12/",
        "https://example.com/books/é",
    ] {
        assert!(!matches(t, topic), "{topic}");
    }
}

#[test]
fn reserved_expansion_admits_reserved_characters_but_no_space() {
    assert!(matches(
        "https://example.com/{+path}",
        "https://example.com/a/b?c#d"
    ));
    assert!(!matches(
        "https://example.com/{+path}",
        "https://example.com/a b"
    ));
}

#[test]
fn a_prefix_bounds_the_value_length() {
    assert!(matches("{var:3}", "val"));
    assert!(matches("{var:3}", "%C3%A9a"));
    assert!(!matches("{var:3}", "valu"));
    assert!(!matches("X{.var:2}", "X.abc"));
}

#[test]
fn a_named_expansion_carries_the_variable_name() {
    assert!(matches("/books{?page}", "/books?page=2"));
    assert!(matches("/books{?page}", "/books"));
    assert!(!matches("/books{?page}", "/books?other=2"));
    assert!(!matches("/books{;id}", "/books;other=2"));
}

#[test]
fn variables_expand_in_the_templates_order() {
    assert!(matches("{/a,b:1}", "/x/y"));
    assert!(!matches("{/a:1,b}", "/xy/z"));
}

#[test]
fn literal_text_matches_verbatim() {
    assert!(matches(
        "https://example.com/café/{id}",
        "https://example.com/café/1"
    ));
    assert!(matches("/a%2Fb/{id}", "/a%2Fb/1"));
    assert!(!matches("/a.b/{id}", "/aXb/1"));
}

#[test]
fn what_rfc_6570_does_not_define_is_not_a_template() {
    for t in [
        "{}",
        "{id",
        "id}",
        "{{id}}",
        "{a b}",
        "{=id}",
        "{!id}",
        "{id:0}",
        "{id:10000}",
        "{id:2*}",
        "{.}",
        "{a..b}",
        "{a,}",
        "a b{id}",
        "\"{id}\"",
        "50%{id}",
        "<{id}>",
    ] {
        assert_eq!(compile(t).err(), Some(TemplateError::Syntax), "{t}");
    }
}

#[test]
fn a_template_too_large_to_compile_is_refused() {
    assert_eq!(compile("{a:9999}").err(), Some(TemplateError::TooLarge));
    assert_eq!(
        compile(&"{/a*}{?b}".repeat(400)).err(),
        Some(TemplateError::TooLarge)
    );
    // Distinct variables in one expression cost the square of their count.
    let names: Vec<String> = (0..400).map(|i| format!("v{i}")).collect();
    let named = format!("{{?{}}}", names.join(","));
    assert_eq!(compile(&named).err(), Some(TemplateError::TooLarge));
    // Interchangeable variables cost only their count.
    assert!(compile(&format!("{{{}}}", names[..100].join(","))).is_ok());
    assert_eq!(
        compile(&format!("{{{}}}", names.join(","))).err(),
        Some(TemplateError::TooLarge)
    );
}

#[test]
fn ordinary_templates_are_far_from_the_limits() {
    assert!(compile("{a:100}").is_ok());
    assert_eq!(compile("{a:300}").err(), Some(TemplateError::TooLarge));
    assert!(
        compile("https://example.com/{+path}/{id}{?q,page,sort,filter,lang,x,y,z}{#f}").is_ok()
    );
}

#[test]
fn percent_encoded_variable_names_and_dots_are_names() {
    assert!(matches("{a.b}", "x"));
    assert!(matches("{%41b}", "x"));
}
