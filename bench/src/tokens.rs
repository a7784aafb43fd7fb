//! Token streaming's storage: what an ended channel's objects keep once
//! `ENDED_TTL_SECONDS` has passed. One streaming publish of 5,000 events ends a fresh
//! channel; its objects' SQLite files (those the runtime made for it, under the server's
//! persist directory) are read before and after the time-to-live, with Python's sqlite3:
//! every row of every table (the runtime's key-value table included), and an alarm still
//! pending, count; the local tooling's record of an object's name does not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cases::{now_us, payload, Options, Target, TOKEN_MESSAGES};
use crate::client::{Api, Body};

/// What one object keeps in its SQLite file, as the end-to-end tests count it.
const COUNT_ROWS: &str = include_str!("../../tests/support/stored_rows.py");

/// What an ended channel's objects kept.
#[derive(Debug)]
pub struct Storage {
    pub objects: usize,
    pub rows_at_end: u64,
    pub rows_after_ttl: u64,
}

/// The SQLite files of the `Channel` objects under `persist`.
fn channel_databases(persist: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![persist.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let in_channels = dir.to_string_lossy().contains("Channel");
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if in_channels && name.ends_with(".sqlite") && name != "metadata.sqlite" {
                found.insert(path);
            }
        }
    }
    found
}

fn rows_in(files: &BTreeSet<PathBuf>) -> Result<u64, String> {
    let mut total = 0;
    for file in files {
        let out = Command::new("python3")
            .args(["-c", COUNT_ROWS])
            .arg(file)
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        total += text.trim().parse::<u64>().map_err(|_| {
            format!(
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    }
    Ok(total)
}

/// Ends a fresh channel with one streaming publish of 5,000 events, and reads what its
/// objects keep at its end and `ttl` (plus the alarm's slack) after.
pub async fn storage_after_ttl(
    target: &Target,
    persist: &Path,
    opts: &Options,
    ttl: Duration,
) -> Result<Storage, String> {
    let before = channel_databases(persist);
    let api = Api::new(target.addr, opts.connect_timeout, opts.request_timeout);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let writer = tokio::spawn(async move {
        for seq in 0..TOKEN_MESSAGES {
            let line = format!("{}\n", payload(seq, now_us()));
            if tx.send(bytes::Bytes::from(line)).await.is_err() {
                break;
            }
        }
    });
    let path = format!("/channels/tokens-ttl-{}/events?stream=1&end=1", opts.run_id);
    let published = api
        .publish(&path, Body::NdjsonStream(rx), opts.bearer.as_deref())
        .await;
    let _ = writer.await;
    published.map_err(|(_, e)| e)?;
    let ours: BTreeSet<PathBuf> = channel_databases(persist)
        .difference(&before)
        .cloned()
        .collect();
    let rows_at_end = rows_in(&ours)?;
    // The deletion runs at the root's alarm, on time; a few seconds of slack for it.
    tokio::time::sleep(ttl + Duration::from_secs(5)).await;
    Ok(Storage {
        objects: ours.len(),
        rows_at_end,
        rows_after_ttl: rows_in(&ours)?,
    })
}
