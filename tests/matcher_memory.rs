//! What a hub subscriber's matchers hold in memory is what their budget counted: compiled
//! and used (every search sizes the Pike VM's scratch space), the live heap they add stays
//! within the bytes charged plus a little per matcher for its text and its parts.
//!
//! A counting allocator measures the live heap; the tests in this file run one at a time
//! (one lock) so that they do not count each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use sse_edge::domain::mercure::subscribe::compile;
use sse_edge::domain::mercure::{MatcherBudget, MatcherLimits, SubscribeQuery, TopicMatcher};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const R: &str = "http://127.0.0.1:8787/.well-known/mercure";

/// Allowed beyond the charged bytes, per matcher: its text twice (the spec and the
/// pattern strings), the URL pattern's components and small vectors.
const PER_MATCHER_SLACK: usize = 8 * 1024;

/// Compiles `query`'s matchers, matches each against `topics`, and returns the matchers,
/// the bytes charged and the live heap they added.
fn held(query: &str, topics: &[String]) -> (Vec<TopicMatcher>, usize, usize) {
    let q = SubscribeQuery::parse(query, R).unwrap_or_else(|e| panic!("{query}: {e}"));
    let before = LIVE.load(Ordering::SeqCst);
    let mut budget = MatcherBudget::new(MatcherLimits::default());
    let matchers = compile(q.specs(), R, &mut budget).unwrap();
    for m in &matchers {
        for topic in topics {
            std::hint::black_box(m.matches(topic));
        }
    }
    let after = LIVE.load(Ordering::SeqCst);
    (matchers, budget.used(), (after - before).max(0) as usize)
}

fn topics() -> Vec<String> {
    (0..50)
        .map(|i| {
            format!(
                "https://example.com/books/{i}/chapters/{}",
                "é".repeat(i % 7)
            )
        })
        .chain(["/relative/x".to_string(), "urn:x:y".to_string()])
        .collect()
}

#[test]
fn ordinary_matchers_hold_what_was_charged() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    let query = [
        "match_urlpattern=https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid%2Fchapters%2F%3Ac",
        "match_urlpattern=%2Frelative%2F*",
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D%2Fchapters%2F%7Bc%7D",
        "topic=https%3A%2F%2Fexample.com%2F%7B%2Bpath%7D%7B%3Fq%2Cpage%7D",
        "match=urn%3Ax%3Ay",
    ]
    .join("&");
    let (matchers, charged, live) = held(&query, &topics());
    assert!(charged > 0);
    assert!(
        live <= charged + matchers.len() * PER_MATCHER_SLACK,
        "live {live} B, charged {charged} B"
    );
}

#[test]
fn a_subscriber_at_its_bound_holds_no_more_than_the_bound() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    // Matchers of tens of KB each, as many as fit in the default 1 MiB.
    let one = "match_urlpattern=%2Fa%2F%3Ax(%5B%5Cp%7BL%7D%5Cp%7BN%7D%5D%7B2%7D)";
    let mut n = 12;
    let (matchers, charged, live) = loop {
        let query = vec![one; n].join("&");
        let q = SubscribeQuery::parse(&query, R).unwrap();
        let mut budget = MatcherBudget::new(MatcherLimits::default());
        if compile(q.specs(), R, &mut budget).is_ok() {
            break held(&query, &["/a/éz".to_string(), "/a/12".to_string()]);
        }
        n -= 1;
    };
    assert!(n >= 3, "{n} matchers fit");
    assert!(charged <= 1024 * 1024);
    assert!(
        live <= charged + matchers.len() * PER_MATCHER_SLACK,
        "live {live} B, charged {charged} B, {n} matchers"
    );
}
