//! Token verification (§3.3–§3.7): every rule, and every way a token is refused.
//!
//! Run with `cargo test --test mercure_token`. Tokens are minted here by hand (header and
//! claims written as JSON, signed with HMAC), so the tests do not trust the verifier's
//! own encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::{Sha256, Sha512};

use sse_edge::domain::mercure::token::{
    verify, Action, Generation, Grants, TokenContext, TokenError, MAX_DETAILS,
};
use sse_edge::domain::mercure::{
    verify_spec, GrantsSpec, MatcherBudget, MatcherKind, MatcherLimits, TopicSpec,
};

const KEY: &[u8] = b"!ChangeThisMercureHubJWTSecretKey!";
const R: &str = "http://127.0.0.1:8787/.well-known/mercure";
const ISS: &str = "https://issuer.example";
const NOW: u64 = 1_800_000_000;

const HS256: &str = r#"{"alg":"HS256"}"#;
const HS256_JWT: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const HS256_AT: &str = r#"{"alg":"HS256","typ":"at+jwt"}"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(signing_input: &str, key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

/// A compact JWS of exactly this header and these claims, signed with HMAC-SHA256.
fn mint_with(header: &str, claims: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = sign(&input, key);
    format!("{input}.{signature}")
}

fn mint(header: &str, claims: Value) -> String {
    mint_with(header, &claims.to_string(), KEY)
}

fn ctx() -> TokenContext {
    TokenContext {
        now_s: NOW,
        issuers: vec![ISS.into()],
        resource: R.into(),
        limits: Default::default(),
    }
}

/// Grants as the Worker passes them on.
fn to_json(grants: &Grants) -> String {
    serde_json::to_string(&grants.spec()).unwrap()
}

/// Grants as the hub object reads and compiles them.
fn from_json(json: &str) -> Result<Grants, String> {
    let spec: GrantsSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
    spec.compile(&mut MatcherBudget::new(Default::default()))
        .map_err(|e| e.to_string())
}

fn check(token: &str) -> Result<Grants, TokenError> {
    verify(token, KEY, &ctx())
}

fn refused(token: &str) -> &'static str {
    check(token)
        .expect_err("the token should be refused")
        .reason()
}

fn mercure_detail(actions: Value, topics: Value) -> Value {
    json!({"type": "https://mercure.rocks/authorization-detail", "actions": actions, "topics": topics})
}

/// 1.0 claims, valid but for what a test changes.
fn v1_claims(details: Value) -> Value {
    json!({
        "iss": ISS,
        "aud": R,
        "sub": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
        "exp": NOW + 60,
        "authorization_details": details,
    })
}

fn v1_publish_all() -> Value {
    v1_claims(json!([mercure_detail(
        json!(["publish"]),
        json!([{"match": "*"}])
    )]))
}

fn v1_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = v1_publish_all();
    change(claims.as_object_mut().unwrap());
    mint(HS256_AT, claims)
}

fn v1_detail(detail: Value) -> String {
    mint(HS256_AT, v1_claims(json!([detail])))
}

// ---------------------------------------------------------------------------------------
// §3.3: the JWS, its algorithm and its key
// ---------------------------------------------------------------------------------------

#[test]
fn a_0x_token_signed_with_the_key_grants_what_it_says() {
    let token = mint(
        HS256,
        json!({"mercure": {"publish": ["*"], "subscribe": ["https://example.com/{id}"]}}),
    );
    let grants = check(&token).unwrap();
    assert_eq!(grants.generation(), Generation::V0);
    assert!(grants.allows(Action::Publish, "https://example.com/anything"));
    assert!(grants.allows(Action::Subscribe, "https://example.com/1"));
    assert!(!grants.allows(Action::Subscribe, "https://example.com/1/2"));
    assert_eq!(grants.exp(), None);
}

#[test]
fn a_token_signed_with_another_key_is_invalid() {
    let token = mint_with(HS256, r#"{"mercure":{"publish":["*"]}}"#, b"another key");
    assert_eq!(refused(&token), "bad signature");
}

#[test]
fn a_token_with_a_tampered_claim_is_invalid() {
    let token = mint(HS256, json!({"mercure": {"publish": ["a"]}}));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(br#"{"mercure":{"publish":["*"]}}"#);
    assert_eq!(
        refused(&format!("{}.{forged}.{}", parts[0], parts[2])),
        "bad signature"
    );
}

#[test]
fn a_token_with_alg_none_is_invalid() {
    let claims = b64(br#"{"mercure":{"publish":["*"]}}"#);
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(refused(&format!("{header}.{claims}.")), "alg is not HS256");
    // Even with a valid HS256 signature over it.
    let signed = mint_with(r#"{"alg":"none"}"#, r#"{"mercure":{"publish":["*"]}}"#, KEY);
    assert_eq!(refused(&signed), "alg is not HS256");
}

#[test]
fn a_token_with_alg_hs512_is_invalid() {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS512"}"#),
        b64(br#"{"mercure":{"publish":["*"]}}"#)
    );
    let mut mac = Hmac::<Sha512>::new_from_slice(KEY).unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    assert_eq!(refused(&token), "alg is not HS256");
}

#[test]
fn a_token_with_alg_rs256_is_invalid() {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(br#"{"mercure":{"publish":["*"]}}"#)
    );
    let token = format!("{input}.{}", b64(&[7u8; 256]));
    assert_eq!(refused(&token), "alg is not HS256");
    // An RS256 header over an HMAC signature (algorithm confusion) fails the same way.
    let confused = mint_with(
        r#"{"alg":"RS256"}"#,
        r#"{"mercure":{"publish":["*"]}}"#,
        KEY,
    );
    assert_eq!(refused(&confused), "alg is not HS256");
}

#[test]
fn an_alg_in_another_case_or_missing_is_invalid() {
    for header in [
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":256}"#,
    ] {
        let token = mint_with(header, r#"{"mercure":{"publish":["*"]}}"#, KEY);
        assert_eq!(refused(&token), "alg is not HS256", "{header}");
    }
}

#[test]
fn key_hints_in_the_header_are_never_used() {
    let attacker = b"attacker's key";
    let jwk = json!({"kty": "oct", "k": b64(attacker)});
    for header in [
        json!({"alg": "HS256", "jwk": jwk}),
        json!({"alg": "HS256", "jku": "https://attacker.test/jwks.json"}),
        json!({"alg": "HS256", "x5u": "https://attacker.test/cert.pem"}),
        json!({"alg": "HS256", "kid": "attacker"}),
    ] {
        let token = mint_with(
            &header.to_string(),
            r#"{"mercure":{"publish":["*"]}}"#,
            attacker,
        );
        assert_eq!(refused(&token), "bad signature", "{header}");
    }
    // With the hub's key, a hint changes nothing either.
    let token = mint(
        &json!({"alg": "HS256", "kid": "whatever"}).to_string(),
        json!({"mercure": {"publish": ["*"]}}),
    );
    assert!(check(&token).is_ok());
}

#[test]
fn a_token_with_a_crit_header_is_invalid() {
    let token = mint(
        r#"{"alg":"HS256","crit":["exp"]}"#,
        json!({"mercure": {"publish": ["*"]}}),
    );
    assert_eq!(refused(&token), "crit header");
}

#[test]
fn a_token_that_is_not_a_compact_jws_is_invalid() {
    let good = mint(HS256, json!({"mercure": {"publish": ["*"]}}));
    let parts: Vec<&str> = good.split('.').collect();
    for token in [
        String::new(),
        "abc".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{good}."),
    ] {
        assert_eq!(refused(&token), "not a compact JWS", "{token}");
    }
}

#[test]
fn a_token_whose_parts_are_not_base64url_json_objects_is_invalid() {
    let claims = r#"{"mercure":{"publish":["*"]}}"#;
    // Padding, standard-alphabet characters, or a header that is not an object.
    let padded = format!("{}=", b64(HS256.as_bytes()));
    let token = format!(
        "{padded}.{}.{}",
        b64(claims.as_bytes()),
        sign(&format!("{padded}.{}", b64(claims.as_bytes())), KEY)
    );
    assert_eq!(refused(&token), "header is not a base64url JSON object");
    assert_eq!(
        refused(&mint_with("[1]", claims, KEY)),
        "header is not a base64url JSON object"
    );
    assert_eq!(
        refused(&mint_with("not json", claims, KEY)),
        "header is not a base64url JSON object"
    );
    assert_eq!(
        refused(&mint_with(HS256, "[]", KEY)),
        "claims are not a base64url JSON object"
    );
    assert_eq!(
        refused(&mint_with(HS256, "\"x\"", KEY)),
        "claims are not a base64url JSON object"
    );
    let good = mint(HS256, json!({}));
    assert_eq!(refused(&format!("{good}+/")), "signature is not base64url");
}

#[test]
fn no_token_is_valid_without_a_key() {
    let token = mint(HS256, json!({"mercure": {"publish": ["*"]}}));
    assert_eq!(verify(&token, b"", &ctx()).unwrap_err().reason(), "no key");
}

#[test]
fn every_refusal_looks_the_same_from_outside() {
    let a = check("abc").unwrap_err();
    let b = check(&mint_with(HS256, "{}", b"other")).unwrap_err();
    assert_ne!(a.reason(), b.reason());
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(a.to_string(), "invalid token");
}

// ---------------------------------------------------------------------------------------
// §3.4–§3.5: 0.x tokens
// ---------------------------------------------------------------------------------------

#[test]
fn a_token_without_authorization_details_is_a_0x_token() {
    let grants = check(&mint(HS256, json!({"mercure": {"publish": ["*"]}}))).unwrap();
    assert_eq!(grants.generation(), Generation::V0);
}

#[test]
fn a_0x_token_ignores_typ() {
    for header in [
        HS256,
        HS256_JWT,
        HS256_AT,
        r#"{"alg":"HS256","typ":"anything"}"#,
        r#"{"alg":"HS256","typ":7}"#,
    ] {
        let token = mint(header, json!({"mercure": {"publish": ["*"]}}));
        assert!(check(&token).is_ok(), "{header}");
    }
}

#[test]
fn a_0x_token_needs_no_exp_and_ignores_iss_aud_iat_and_sub() {
    let token = mint(
        HS256,
        json!({"mercure": {"publish": ["*"]}, "iss": "nobody", "aud": "elsewhere", "iat": "x", "sub": 1}),
    );
    assert!(check(&token).is_ok());
}

#[test]
fn a_0x_token_with_a_future_exp_is_valid_and_carries_it() {
    let grants = check(&mint(
        HS256,
        json!({"mercure": {"publish": ["*"]}, "exp": NOW + 30}),
    ))
    .unwrap();
    assert_eq!(grants.exp(), Some(NOW + 30));
    let fractional = check(&mint(
        HS256,
        json!({"mercure": {}, "exp": NOW as f64 + 30.9}),
    ))
    .unwrap();
    assert_eq!(fractional.exp(), Some(NOW + 30));
}

#[test]
fn an_expired_0x_token_is_invalid() {
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {}, "exp": NOW - 1}))),
        "expired"
    );
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {}, "exp": NOW}))),
        "expired"
    );
}

#[test]
fn a_0x_token_whose_nbf_is_in_the_future_is_invalid() {
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {}, "nbf": NOW + 6}))),
        "not yet valid (nbf)"
    );
    assert!(check(&mint(HS256, json!({"mercure": {}, "nbf": NOW + 5}))).is_ok());
    assert!(check(&mint(HS256, json!({"mercure": {}, "nbf": NOW - 100}))).is_ok());
}

#[test]
fn a_time_claim_that_is_not_a_number_is_invalid() {
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {}, "exp": "soon"}))),
        "exp is not a number"
    );
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {}, "nbf": true}))),
        "nbf is not a number"
    );
}

#[test]
fn the_namespaced_claim_is_preferred_over_mercure() {
    let token = mint(
        HS256,
        json!({
            "mercure": {"publish": ["https://example.com/a"]},
            "https://mercure.rocks/": {"publish": ["https://example.com/b"]},
        }),
    );
    let grants = check(&token).unwrap();
    assert!(grants.allows(Action::Publish, "https://example.com/b"));
    assert!(!grants.allows(Action::Publish, "https://example.com/a"));
}

#[test]
fn a_0x_token_without_a_claim_grants_nothing() {
    let grants = check(&mint(HS256, json!({"sub": "x"}))).unwrap();
    assert!(!grants.allows(Action::Publish, "a"));
    assert!(!grants.allows(Action::Subscribe, "a"));
}

#[test]
fn publish_and_subscribe_grant_only_their_own_action() {
    let grants = check(&mint(
        HS256,
        json!({"mercure": {"publish": ["a"], "subscribe": ["b"]}}),
    ))
    .unwrap();
    assert!(grants.allows(Action::Publish, "a") && !grants.allows(Action::Subscribe, "a"));
    assert!(grants.allows(Action::Subscribe, "b") && !grants.allows(Action::Publish, "b"));
}

#[test]
fn a_0x_array_may_hold_1_0_matcher_objects() {
    let token = mint(
        HS256,
        json!({"mercure": {"subscribe": [
            "https://example.com/{id}",
            {"match": "https://example.org/books/:id", "match_type": "urlpattern"},
            {"match": "exact-topic"},
        ]}}),
    );
    let grants = check(&token).unwrap();
    assert!(grants.allows(Action::Subscribe, "https://example.com/1"));
    assert!(grants.allows(Action::Subscribe, "https://example.org/books/7"));
    assert!(grants.allows(Action::Subscribe, "exact-topic"));
    assert!(!grants.allows(Action::Subscribe, "https://example.org/films/7"));
}

#[test]
fn a_malformed_matcher_object_in_a_0x_array_is_invalid() {
    for entry in [
        json!({"match": "https://example.com/(", "match_type": "urlpattern"}),
        json!({"match": "x", "match_type": "regex"}),
        json!({"match_type": "exact"}),
        json!({"match": ""}),
    ] {
        let token = mint(HS256, json!({"mercure": {"publish": [entry]}}));
        assert!(check(&token).is_err(), "{entry}");
    }
}

#[test]
fn malformed_0x_claims_are_invalid() {
    let cases = [
        (
            json!({"mercure": "publish"}),
            "mercure claim is not an object",
        ),
        (
            json!({"mercure": {"publish": "*"}}),
            "publish or subscribe is not an array",
        ),
        (
            json!({"mercure": {"subscribe": {"a": 1}}}),
            "publish or subscribe is not an array",
        ),
        (
            json!({"mercure": {"publish": [1]}}),
            "a selector is neither a string nor a matcher object",
        ),
        (
            json!({"mercure": {"publish": [null]}}),
            "a selector is neither a string nor a matcher object",
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(refused(&mint(HS256, claims.clone())), reason, "{claims}");
    }
}

#[test]
fn a_0x_array_of_more_than_a_thousand_selectors_is_invalid() {
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    assert_eq!(
        refused(&mint(HS256, json!({"mercure": {"publish": many}}))),
        "too many selectors"
    );
    let enough: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    assert!(check(&mint(HS256, json!({"mercure": {"publish": enough}}))).is_ok());
}

#[test]
fn a_0x_payload_is_any_json_value_and_applies_to_every_subscription() {
    let spec = TopicSpec::new(MatcherKind::Selector, "https://example.com/{id}");
    for payload in [json!({"user": 1}), json!("text"), json!([1, 2]), json!(3)] {
        let token = mint(
            HS256,
            json!({"mercure": {"subscribe": ["*"], "payload": payload}}),
        );
        assert_eq!(check(&token).unwrap().payload_for(&spec), Some(payload));
    }
    let none = check(&mint(HS256, json!({"mercure": {"subscribe": ["*"]}}))).unwrap();
    assert_eq!(none.payload_for(&spec), None);
}

// ---------------------------------------------------------------------------------------
// §3.4, §3.6: 1.0 tokens
// ---------------------------------------------------------------------------------------

#[test]
fn a_valid_1_0_token_grants_what_its_details_say() {
    let token = v1_detail(mercure_detail(
        json!(["publish", "subscribe"]),
        json!([
            {"match": "https://example.com/books/1"},
            {"match": "https://example.com/users/:id", "match_type": "urlpattern"},
        ]),
    ));
    let grants = check(&token).unwrap();
    assert_eq!(grants.generation(), Generation::V1);
    assert_eq!(grants.exp(), Some(NOW + 60));
    for action in [Action::Publish, Action::Subscribe] {
        assert!(grants.allows(action, "https://example.com/books/1"));
        assert!(grants.allows(action, "https://example.com/users/42"));
        assert!(!grants.allows(action, "https://example.com/books/2"));
    }
}

#[test]
fn a_1_0_typ_is_at_jwt_in_any_case_with_or_without_its_media_type_prefix() {
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let header = json!({"alg": "HS256", "typ": typ}).to_string();
        assert!(check(&mint(&header, v1_publish_all())).is_ok(), "{typ}");
    }
}

#[test]
fn a_1_0_token_with_another_typ_or_none_is_invalid() {
    for header in [
        HS256.to_string(),
        HS256_JWT.to_string(),
        json!({"alg": "HS256", "typ": "application/jwt"}).to_string(),
        json!({"alg": "HS256", "typ": "at+jwt2"}).to_string(),
        json!({"alg": "HS256", "typ": ["at+jwt"]}).to_string(),
    ] {
        assert_eq!(
            refused(&mint(&header, v1_publish_all())),
            "typ is not at+jwt",
            "{header}"
        );
    }
}

#[test]
fn a_1_0_token_without_exp_is_invalid() {
    assert_eq!(
        refused(&v1_with(|c| {
            c.remove("exp");
        })),
        "1.0 token without exp"
    );
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("exp".into(), Value::Null);
        })),
        "1.0 token without exp"
    );
}

#[test]
fn an_expired_1_0_token_is_invalid() {
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("exp".into(), json!(NOW - 1));
        })),
        "expired"
    );
}

#[test]
fn a_1_0_token_whose_nbf_is_in_the_future_is_invalid() {
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("nbf".into(), json!(NOW + 60));
        })),
        "not yet valid (nbf)"
    );
    assert!(check(&v1_with(|c| {
        c.insert("nbf".into(), json!(NOW + 5));
    }))
    .is_ok());
}

#[test]
fn a_1_0_token_from_an_unknown_issuer_is_invalid() {
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("iss".into(), json!("https://other.example"));
        })),
        "issuer not accepted"
    );
    assert_eq!(
        refused(&v1_with(|c| {
            c.remove("iss");
        })),
        "issuer not accepted"
    );
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("iss".into(), json!([ISS]));
        })),
        "issuer not accepted"
    );
    // Compared exactly.
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("iss".into(), json!(format!("{ISS}/")));
        })),
        "issuer not accepted"
    );
}

#[test]
fn no_1_0_token_is_valid_without_configured_issuers() {
    let token = mint(HS256_AT, v1_publish_all());
    let ctx = TokenContext {
        issuers: vec![],
        ..ctx()
    };
    assert_eq!(
        verify(&token, KEY, &ctx).unwrap_err().reason(),
        "issuer not accepted"
    );
}

#[test]
fn any_configured_issuer_is_accepted() {
    let token = v1_with(|c| {
        c.insert("iss".into(), json!("https://b.example"));
    });
    let ctx = TokenContext {
        issuers: vec!["https://a.example".into(), "https://b.example".into()],
        ..ctx()
    };
    assert!(verify(&token, KEY, &ctx).is_ok());
}

#[test]
fn a_1_0_token_with_a_wrong_audience_is_invalid() {
    for aud in [
        json!("https://elsewhere.test/.well-known/mercure"),
        json!(format!("{R}/")),
        json!([]),
        json!(["https://elsewhere.test"]),
        json!(5),
    ] {
        assert_eq!(
            refused(&v1_with(|c| {
                c.insert("aud".into(), aud.clone());
            })),
            "audience is not this hub",
            "{aud}"
        );
    }
    assert_eq!(
        refused(&v1_with(|c| {
            c.remove("aud");
        })),
        "audience is not this hub"
    );
    assert_eq!(
        refused(&v1_with(|c| {
            c.insert("aud".into(), json!([R, 3]));
        })),
        "aud holds a non-string"
    );
}

#[test]
fn a_1_0_audience_may_be_an_array_containing_the_hub() {
    assert!(check(&v1_with(|c| {
        c.insert("aud".into(), json!(["https://other.test", R]));
    }))
    .is_ok());
}

#[test]
fn a_1_0_token_needs_no_sub_client_id_iat_or_jti() {
    let token = v1_with(|c| {
        c.remove("sub");
    });
    assert!(check(&token).is_ok());
}

#[test]
fn authorization_details_that_is_not_an_array_is_invalid() {
    for details in [
        json!(null),
        json!({}),
        json!("x"),
        json!(mercure_detail(json!(["publish"]), json!([{"match": "*"}]))),
    ] {
        assert_eq!(
            refused(&mint(HS256_AT, v1_claims(details.clone()))),
            "authorization_details is not an array",
            "{details}"
        );
    }
}

#[test]
fn an_authorization_detail_that_is_not_an_object_is_invalid() {
    let token = mint(HS256_AT, v1_claims(json!(["mercure"])));
    assert_eq!(refused(&token), "an authorization detail is not an object");
}

#[test]
fn entries_of_other_types_are_ignored_even_when_malformed() {
    let token = mint(
        HS256_AT,
        v1_claims(json!([
            {"type": "payment_initiation", "topics": "not mercure", "actions": 5},
            {"type": "https://mercure.rocks/authorization-detail/", "actions": ["publish"], "topics": [{"match": "*"}]},
            {"actions": ["publish"], "topics": [{"match": "*"}]},
            mercure_detail(json!(["subscribe"]), json!([{"match": "a"}])),
        ])),
    );
    let grants = check(&token).unwrap();
    assert!(!grants.allows(Action::Publish, "a"));
    assert!(grants.allows(Action::Subscribe, "a"));
}

#[test]
fn an_empty_authorization_details_grants_nothing() {
    let grants = check(&mint(HS256_AT, v1_claims(json!([])))).unwrap();
    assert_eq!(grants.generation(), Generation::V1);
    assert!(!grants.allows(Action::Subscribe, "a"));
}

#[test]
fn a_mercure_entry_without_a_non_empty_array_of_actions_is_invalid() {
    for actions in [
        Value::Null,
        json!([]),
        json!("publish"),
        json!({"publish": true}),
    ] {
        let mut detail = mercure_detail(actions.clone(), json!([{"match": "*"}]));
        if actions.is_null() {
            detail.as_object_mut().unwrap().remove("actions");
        }
        assert_eq!(
            refused(&v1_detail(detail)),
            "actions is not a non-empty array",
            "{actions}"
        );
    }
}

#[test]
fn a_non_string_action_is_invalid() {
    let token = v1_detail(mercure_detail(
        json!(["publish", 1]),
        json!([{"match": "*"}]),
    ));
    assert_eq!(refused(&token), "an action is not a string");
}

#[test]
fn unknown_actions_grant_nothing_and_invalidate_nothing() {
    let grants = check(&v1_detail(mercure_detail(
        json!(["read", "Publish"]),
        json!([{"match": "*"}]),
    )))
    .unwrap();
    assert!(!grants.allows(Action::Publish, "a"));
    assert!(!grants.allows(Action::Subscribe, "a"));
}

#[test]
fn a_mercure_entry_without_a_non_empty_array_of_topics_is_invalid() {
    for topics in [json!([]), json!("*"), json!({"match": "*"})] {
        let token = v1_detail(mercure_detail(json!(["publish"]), topics.clone()));
        assert_eq!(
            refused(&token),
            "topics is not a non-empty array",
            "{topics}"
        );
    }
    let mut missing = mercure_detail(json!(["publish"]), json!([]));
    missing.as_object_mut().unwrap().remove("topics");
    assert_eq!(
        refused(&v1_detail(missing)),
        "topics is not a non-empty array"
    );
}

#[test]
fn a_bare_string_topic_is_invalid() {
    let token = v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!(["https://example.com/a"]),
    ));
    assert_eq!(refused(&token), "a topic is not a matcher object");
}

#[test]
fn a_null_topic_is_invalid() {
    let token = v1_detail(mercure_detail(json!(["subscribe"]), json!([null])));
    assert_eq!(refused(&token), "a topic is not a matcher object");
}

#[test]
fn a_topic_without_a_non_empty_match_is_invalid() {
    for topic in [
        json!({}),
        json!({"match_type": "exact"}),
        json!({"match": ""}),
        json!({"match": null}),
        json!({"match": 5}),
    ] {
        let token = v1_detail(mercure_detail(json!(["subscribe"]), json!([topic])));
        assert_eq!(
            refused(&token),
            "match is not a non-empty string",
            "{topic}"
        );
    }
}

#[test]
fn an_unknown_match_type_is_invalid() {
    for match_type in ["regex", "Exact", "URLPattern", "uri_template", ""] {
        let token = v1_detail(mercure_detail(
            json!(["subscribe"]),
            json!([{"match": "a", "match_type": match_type}]),
        ));
        assert_eq!(refused(&token), "unknown match_type", "{match_type}");
    }
    let token = v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "a", "match_type": 1}]),
    ));
    assert_eq!(refused(&token), "match_type is not a string");
}

#[test]
fn match_type_defaults_to_exact() {
    let grants = check(&v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "https://example.com/:id"}]),
    )))
    .unwrap();
    assert!(grants.allows(Action::Subscribe, "https://example.com/:id"));
    assert!(!grants.allows(Action::Subscribe, "https://example.com/1"));
}

#[test]
fn an_unparsable_url_pattern_is_invalid() {
    let token = v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "https://example.com/(", "match_type": "urlpattern"}]),
    ));
    assert_eq!(refused(&token), "unparsable URL pattern");
}

#[test]
fn a_match_with_a_control_character_or_over_4096_bytes_is_invalid() {
    for text in [
        "a\u{200B}b".to_string(),
        "a\nb".to_string(),
        "a".repeat(4097),
    ] {
        let token = v1_detail(mercure_detail(
            json!(["subscribe"]),
            json!([{"match": text}]),
        ));
        assert_eq!(
            refused(&token),
            "match is too long or has a control character"
        );
    }
}

#[test]
fn one_bad_entry_invalidates_the_whole_token() {
    let token = mint(
        HS256_AT,
        v1_claims(json!([
            mercure_detail(json!(["publish"]), json!([{"match": "*"}])),
            mercure_detail(json!(["subscribe"]), json!(["bare"])),
        ])),
    );
    assert!(check(&token).is_err());
}

#[test]
fn a_payload_that_is_not_an_object_is_invalid() {
    let mut detail = mercure_detail(json!(["subscribe"]), json!([{"match": "*"}]));
    detail
        .as_object_mut()
        .unwrap()
        .insert("payload".into(), json!("text"));
    assert_eq!(refused(&v1_detail(detail)), "payload is not an object");
}

#[test]
fn more_than_a_hundred_mercure_entries_are_invalid() {
    let entry = mercure_detail(json!(["subscribe"]), json!([{"match": "*"}]));
    let fits: Vec<Value> = vec![entry.clone(); MAX_DETAILS];
    assert!(check(&mint(HS256_AT, v1_claims(json!(fits)))).is_ok());
    let over: Vec<Value> = vec![entry; MAX_DETAILS + 1];
    assert_eq!(
        refused(&mint(HS256_AT, v1_claims(json!(over)))),
        "too many Mercure authorization details"
    );
}

#[test]
fn more_than_a_hundred_topic_objects_in_all_are_invalid() {
    let topics = |n: usize| {
        json!((0..n)
            .map(|i| json!({"match": format!("t{i}")}))
            .collect::<Vec<_>>())
    };
    let fits = json!([
        mercure_detail(json!(["subscribe"]), topics(50)),
        mercure_detail(json!(["publish"]), topics(50)),
    ]);
    assert!(check(&mint(HS256_AT, v1_claims(fits))).is_ok());
    let over = json!([
        mercure_detail(json!(["subscribe"]), topics(50)),
        mercure_detail(json!(["publish"]), topics(51)),
    ]);
    assert_eq!(
        refused(&mint(HS256_AT, v1_claims(over))),
        "too many topics in authorization details"
    );
}

#[test]
fn entries_of_other_types_do_not_count_toward_the_limits() {
    let mut details: Vec<Value> = vec![json!({"type": "other"}); 500];
    details.push(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "*"}]),
    ));
    assert!(check(&mint(HS256_AT, v1_claims(json!(details)))).is_ok());
}

#[test]
fn a_1_0_token_ignores_a_mercure_claim() {
    let mut claims = v1_claims(json!([]));
    claims
        .as_object_mut()
        .unwrap()
        .insert("mercure".into(), json!({"publish": ["*"]}));
    let grants = check(&mint(HS256_AT, claims)).unwrap();
    assert!(!grants.allows(Action::Publish, "a"));
}

#[test]
fn relative_url_patterns_in_a_token_resolve_against_the_hub() {
    let grants = check(&v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "/.well-known/mercure/subscriptions/exact/:topic/:subscriber", "match_type": "urlpattern"}]),
    )))
    .unwrap();
    assert!(grants.allows(
        Action::Subscribe,
        "/.well-known/mercure/subscriptions/exact/a/urn%3Auuid%3A1"
    ));
}

// ---------------------------------------------------------------------------------------
// §3.7, §7.2: grants and payloads
// ---------------------------------------------------------------------------------------

#[test]
fn publishing_needs_every_topic_and_receiving_needs_one() {
    let grants = check(&mint(
        HS256,
        json!({"mercure": {"publish": ["a"], "subscribe": ["a"]}}),
    ))
    .unwrap();
    assert!(grants.allows_all(Action::Publish, &["a"]));
    assert!(!grants.allows_all(Action::Publish, &["a", "b"]));
    assert!(grants.allows_any(Action::Subscribe, &["b", "a"]));
    assert!(!grants.allows_any(Action::Subscribe, &["b", "c"]));
}

#[test]
fn a_1_0_payload_comes_from_the_first_subscribe_entry_matching_the_subscription_text() {
    let mut specific = mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "https://example.com/foo"}]),
    );
    specific["payload"] = json!({"custom1": 1});
    let mut pattern = mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}]),
    );
    pattern["payload"] = json!({"custom2": 2});
    let mut publish_only = mercure_detail(json!(["publish"]), json!([{"match": "*"}]));
    publish_only["payload"] = json!({"never": 0});
    let mut default = mercure_detail(json!(["subscribe"]), json!([{"match": "*"}]));
    default["payload"] = json!({"custom3": 3});
    let grants = check(&mint(
        HS256_AT,
        v1_claims(json!([specific, pattern, publish_only, default])),
    ))
    .unwrap();

    let payload = |kind, text: &str| grants.payload_for(&TopicSpec::new(kind, text));
    assert_eq!(
        payload(MatcherKind::Exact, "https://example.com/foo"),
        Some(json!({"custom1": 1}))
    );
    // The subscription's own text, taken as a topic, is what is matched.
    assert_eq!(
        payload(MatcherKind::UrlPattern, "https://example.com/bar/:id"),
        Some(json!({"custom2": 2}))
    );
    assert_eq!(
        payload(MatcherKind::Exact, "https://example.com/bar/7"),
        Some(json!({"custom2": 2}))
    );
    assert_eq!(
        payload(MatcherKind::Exact, "https://example.com/other"),
        Some(json!({"custom3": 3}))
    );
}

#[test]
fn a_1_0_payload_is_none_when_the_first_matching_entry_has_none() {
    let first = mercure_detail(json!(["subscribe"]), json!([{"match": "a"}]));
    let mut second = mercure_detail(json!(["subscribe"]), json!([{"match": "*"}]));
    second["payload"] = json!({"x": 1});
    let grants = check(&mint(HS256_AT, v1_claims(json!([first, second])))).unwrap();
    assert_eq!(
        grants.payload_for(&TopicSpec::new(MatcherKind::Exact, "a")),
        None
    );
    assert_eq!(
        grants.payload_for(&TopicSpec::new(MatcherKind::Exact, "b")),
        Some(json!({"x": 1}))
    );
}

#[test]
fn grants_survive_a_round_trip_through_json() {
    let mut detail = mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "https://example.com/books/:id", "match_type": "urlpattern"}, {"match": "exact"}]),
    );
    detail["payload"] = json!({"p": true});
    let v1 = check(&v1_detail(detail)).unwrap();
    let v0 = check(&mint(HS256, json!({"mercure": {"publish": ["https://example.com/{id}"], "payload": [1]}, "exp": NOW + 9}))).unwrap();
    for grants in [v1, v0] {
        let back = from_json(&to_json(&grants)).unwrap();
        assert_eq!(back.generation(), grants.generation());
        assert_eq!(back.exp(), grants.exp());
        for (action, topic) in [
            (Action::Subscribe, "https://example.com/books/3"),
            (Action::Subscribe, "exact"),
            (Action::Publish, "https://example.com/3"),
            (Action::Publish, "https://example.com/3/4"),
        ] {
            assert_eq!(
                back.allows(action, topic),
                grants.allows(action, topic),
                "{topic}"
            );
        }
        let spec = TopicSpec::new(MatcherKind::Exact, "exact");
        assert_eq!(back.payload_for(&spec), grants.payload_for(&spec));
    }
}

#[test]
fn grants_whose_json_is_damaged_are_refused() {
    assert!(from_json("{}").is_err());
    let grants = check(&v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "/x/:id", "match_type": "urlpattern"}]),
    )))
    .unwrap();
    let broken = to_json(&grants).replace("/x/:id", "/x/(");
    assert!(from_json(&broken).is_err());
}

#[test]
fn a_token_whose_matchers_are_too_complex_to_compile_is_refused() {
    // One template with a prefix of 300 is past the bound of one matcher by itself.
    let alone = mint(
        HS256,
        json!({"mercure": {"subscribe": ["https://a.test/{v:300}"]}}),
    );
    assert_eq!(refused(&alone), "matchers too complex");
    // A prefix of 30 is about 44 KB compiled: a few fit, fifty together are past the
    // token's 1 MiB.
    let many: Vec<String> = (0..50)
        .map(|i| format!("https://a.test/{i}/{{v:30}}"))
        .collect();
    let v0 = mint(HS256, json!({"mercure": {"subscribe": many}}));
    assert_eq!(refused(&v0), "matchers too complex");
    let pattern = r"https://ex.test/:a([\p{L}\p{N}]{400})";
    let v1 = v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": pattern, "match_type": "urlpattern"}]),
    ));
    assert_eq!(refused(&v1), "matchers too complex");
    // A few such templates fit.
    let few: Vec<String> = (0..3)
        .map(|i| format!("https://a.test/{i}/{{v:30}}"))
        .collect();
    let grants = check(&mint(HS256, json!({"mercure": {"subscribe": few}}))).unwrap();
    assert!(grants.cost() > 0 && grants.cost() <= 1024 * 1024);
    assert!(grants.allows(Action::Subscribe, "https://a.test/2/abc"));
}

#[test]
fn grants_passed_on_are_checked_not_compiled_and_compile_where_they_are_used() {
    let heavy = mint(
        HS256,
        json!({"mercure": {"subscribe": ["https://a.test/{v:100}", "https://a.test/{id}"]}}),
    );
    // Checking costs nothing of the budget: a heavy token passes the check...
    let tiny = TokenContext {
        limits: MatcherLimits {
            matcher_bytes: 1024,
            subscriber_bytes: 1024,
        },
        ..ctx()
    };
    let spec = verify_spec(&heavy, KEY, &tiny).unwrap();
    // ...and is refused where it is compiled, as verify refuses it at once.
    assert!(spec
        .clone()
        .compile(&mut MatcherBudget::new(tiny.limits))
        .is_err());
    assert_eq!(
        verify(&heavy, KEY, &tiny).unwrap_err().reason(),
        "matchers too complex"
    );
    // Within the default limits it compiles to the grants verify gives.
    let grants = spec
        .compile(&mut MatcherBudget::new(Default::default()))
        .unwrap();
    assert!(grants.allows(Action::Subscribe, "https://a.test/7"));
    // What the check refuses is what compiling would: a URL pattern that does not parse.
    let broken = v1_detail(mercure_detail(
        json!(["subscribe"]),
        json!([{"match": "/x/(", "match_type": "urlpattern"}]),
    ));
    assert_eq!(
        verify_spec(&broken, KEY, &ctx()).unwrap_err().reason(),
        "unparsable URL pattern"
    );
}
