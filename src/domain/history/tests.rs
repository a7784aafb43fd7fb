use super::*;

fn event(id: u64) -> StoredEvent {
    StoredEvent::new(EventId(id), id * 10, format!("id: {id}\n\n"))
}

fn log_with(ids: impl IntoIterator<Item = u64>) -> MemoryLog {
    let mut log = MemoryLog::default();
    let events: Vec<StoredEvent> = ids.into_iter().map(event).collect();
    log.append(&events).unwrap();
    log
}

fn ids<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> Vec<u64> {
    events.into_iter().map(|e| e.id.0).collect()
}

#[test]
fn ids_are_read_back_only_as_the_service_writes_them() {
    assert_eq!(EventId::parse("42"), Ok(EventId(42)));
    assert_eq!(EventId::parse(" 0 "), Ok(EventId(0)));
    for bad in ["", "-1", "1.5", "abc", "99999999999999999999999", "1e3"] {
        assert_eq!(EventId::parse(bad), Err(BadEventId), "{bad}");
    }
}

#[test]
fn resume_within_history_replays_exactly_the_missed_events() {
    let log = log_with(1..=10);
    let plan = plan_resume(&log, EventId(4), EventId(10)).unwrap();
    assert!(plan.gaps().is_empty());
    assert_eq!(ids(plan.events()), (5..=10).collect::<Vec<_>>());
    assert_eq!(
        plan_resume(&log, EventId(10), EventId(10)).unwrap(),
        ResumePlan::default()
    );
    // 0 means "from the start": complete when event 1 is still kept.
    assert!(plan_resume(&log, EventId(0), EventId(10))
        .unwrap()
        .gaps()
        .is_empty());
}

#[test]
fn resume_older_than_history_reports_a_gap() {
    let mut log = log_with(1..=10);
    HistoryPolicy {
        max_events: 3,
        max_age_ms: u64::MAX,
    }
    .apply(&mut log, 1000)
    .unwrap();
    assert_eq!(log.oldest_id(), Some(EventId(8)));
    let plan = plan_resume(&log, EventId(2), EventId(10)).unwrap();
    assert_eq!(
        plan.steps[0],
        Replay::Gap(Gap {
            last_event_id: EventId(2),
            first_available_id: Some(EventId(8))
        })
    );
    assert_eq!(plan.events().len(), 3);
    // Exactly at the edge: 7 seen, 8 is the oldest kept: nothing is missing.
    assert!(plan_resume(&log, EventId(7), EventId(10))
        .unwrap()
        .gaps()
        .is_empty());
}

#[test]
fn resume_from_the_future_means_storage_was_reset() {
    let log = log_with(1..=3);
    let plan = plan_resume(&log, EventId(50), EventId(3)).unwrap();
    assert_eq!(
        plan.gaps(),
        [&Gap {
            last_event_id: EventId(50),
            first_available_id: Some(EventId(1))
        }]
    );
    assert_eq!(plan.events().len(), 3);
    // Reset and empty: still a gap.
    assert_eq!(
        plan_resume(&MemoryLog::default(), EventId(50), EventId(0))
            .unwrap()
            .gaps()
            .len(),
        1
    );
}

#[test]
fn ids_given_out_but_never_stored_make_a_gap_never_a_silent_skip() {
    // 1..=5 stored; 6..=9 were handed out and lost in a crash; ids go on at 10.
    let log = log_with((1..=5).chain(10..=12));
    for last_seen in [5, 7, 8] {
        let plan = plan_resume(&log, EventId(last_seen), EventId(12)).unwrap();
        assert_eq!(
            plan.steps[0],
            Replay::Gap(Gap {
                last_event_id: EventId(last_seen),
                first_available_id: Some(EventId(10))
            }),
            "resuming after {last_seen}"
        );
        assert_eq!(ids(plan.events()), [10, 11, 12]);
    }
    assert!(plan_resume(&log, EventId(9), EventId(12))
        .unwrap()
        .gaps()
        .is_empty());
    // The gap stands where the hole is: after 3, events 4 and 5 come first.
    let steps: Vec<String> = plan_resume(&log, EventId(3), EventId(12))
        .unwrap()
        .steps
        .iter()
        .map(|step| match step {
            Replay::Gap(g) => format!("gap after {}", g.last_event_id),
            Replay::Event(e) => e.id.to_string(),
        })
        .collect();
    assert_eq!(steps, ["4", "5", "gap after 5", "10", "11", "12"]);
    // The newest ids lost: a gap at the end, with nothing after it.
    let log = log_with(1..=5);
    assert_eq!(
        plan_resume(&log, EventId(4), EventId(8))
            .unwrap()
            .steps
            .last(),
        Some(&Replay::Gap(Gap {
            last_event_id: EventId(5),
            first_available_id: None
        }))
    );
}

#[test]
fn empty_history_after_expiry_is_a_gap_with_nothing_available() {
    let mut log = log_with(1..=5);
    HistoryPolicy {
        max_events: 100,
        max_age_ms: 10,
    }
    .apply(&mut log, 1000)
    .unwrap();
    assert!(log.is_empty());
    assert_eq!(log.high_water(), EventId(5), "ids are never reused");
    let plan = plan_resume(&log, EventId(3), EventId(5)).unwrap();
    assert_eq!(
        plan.steps,
        [Replay::Gap(Gap {
            last_event_id: EventId(3),
            first_available_id: None
        })]
    );
}

#[test]
fn the_policy_keeps_the_newest_events_and_none_too_old() {
    let mut log = MemoryLog::default();
    let policy = HistoryPolicy {
        max_events: 50,
        max_age_ms: 1_000_000,
    };
    for id in 1..=1000 {
        log.append(&[StoredEvent::new(EventId(id), id, String::new())])
            .unwrap();
        policy.apply(&mut log, id).unwrap();
        assert!(log.len() <= 50);
    }
    assert_eq!(log.oldest_id(), Some(EventId(951)));
    // Counted in events, not in ids: a jump in ids keeps as many events.
    let mut jumped = log_with((1..=3).chain(100..=101));
    HistoryPolicy {
        max_events: 4,
        max_age_ms: u64::MAX,
    }
    .apply(&mut jumped, 0)
    .unwrap();
    assert_eq!(ids(&jumped.after(EventId(0)).unwrap()), [2, 3, 100, 101]);
    // By age: at 45 with a 20 ms limit, events published before 25 go.
    let mut aged = log_with(1..=5);
    HistoryPolicy {
        max_events: 100,
        max_age_ms: 20,
    }
    .apply(&mut aged, 45)
    .unwrap();
    assert_eq!(ids(&aged.after(EventId(0)).unwrap()), [3, 4, 5]);
}

#[test]
fn a_reservation_raises_the_high_water_mark_and_can_be_released_to_the_newest() {
    let mut log = log_with(1..=3);
    log.reserve(EventId(100)).unwrap();
    assert_eq!(log.high_water(), EventId(100));
    log.append(&[event(4)]).unwrap();
    assert_eq!(log.high_water(), EventId(100), "a store never lowers it");
    log.reserve(EventId(0)).unwrap();
    assert_eq!(
        log.high_water(),
        EventId(4),
        "never below the newest stored"
    );
}
