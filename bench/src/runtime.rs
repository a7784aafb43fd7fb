//! Starting the worker (wrangler dev or Miniflare; under Miniflare also the runtime's
//! floor, bench/floor.mjs) in its own process group, waiting for it to be ready,
//! measuring its memory and CPU (from /proc), and stopping it: at the end, on error, on
//! panic (via `Drop`) and on Ctrl-C / SIGTERM / SIGHUP (via a signal thread).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// The process groups of the running servers, for the signal thread (a comparison run
/// keeps several runtimes up at once).
static SERVER_PGIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// How often the server said it reloaded the worker (wrangler watches `src/`).
static SERVER_RELOADS: AtomicU64 = AtomicU64::new(0);

pub fn reloads() -> u64 {
    SERVER_RELOADS.load(Ordering::Relaxed)
}

/// The servers' temporary directories, to remove on a signal.
static SERVER_TMPDIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Debian's libnginx-mod-nchan (bench/setup-nchan.sh installs it).
pub const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Wrangler,
    Miniflare,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wrangler => "wrangler",
            Kind::Miniflare => "miniflare",
        }
    }
}

/// What a server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// The worker as built (build/worker/shim.mjs).
    Product,
    /// bench/floor.mjs: a Durable Object that only holds its listeners' streams and
    /// publishes to them with the least work.
    Floor,
    /// nginx with nchan (bench/nchan.conf), the peer: whatever `kind` says.
    Nchan,
}

pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Option<Child>,
    pgid: i32,
    tmpdir: Option<PathBuf>,
    pub log_path: PathBuf,
    /// Where `POST /gc` collects the garbage of the runtime's isolates (Miniflare only).
    pub gc: Option<SocketAddr>,
}

impl Server {
    /// Where the runtime keeps the objects' storage.
    pub fn persist_dir(&self) -> Option<PathBuf> {
        self.tmpdir.clone()
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is accepted).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn make_tmpdir(tag: &str) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("sse-bench-{tag}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Server {
    /// Starts the server and waits (up to `startup`) for its `Ready on` line.
    pub fn start(
        kind: Kind,
        serves: Serves,
        root: &Path,
        vars: &[(String, String)],
        startup: Duration,
        log_dir: &Path,
        log_name: Option<&str>,
    ) -> Result<Server, String> {
        if serves == Serves::Nchan {
            return Server::start_nchan(root, startup, log_dir, log_name);
        }
        let shim = root.join("build/worker/shim.mjs");
        if !shim.exists() {
            return Err(format!(
                "{} does not exist: build the worker first (scripts/build.sh)",
                shim.display()
            ));
        }
        let wrangler = root.join("node_modules/.bin/wrangler");
        if kind == Kind::Wrangler && !wrangler.exists() {
            return Err(format!(
                "{} not found: run `npm install` (scripts/setup.sh) in {} first",
                wrangler.display(),
                root.display()
            ));
        }
        if serves == Serves::Floor && kind != Kind::Miniflare {
            return Err("the floor (bench/floor.mjs) is served by Miniflare only".into());
        }
        fs::create_dir_all(log_dir).ok();
        let log_path = log_dir.join(match (log_name, serves) {
            (Some(name), _) => format!("{name}.log"),
            (None, Serves::Floor) => format!("{}-floor.log", kind.name()),
            (None, _) => format!("{}.log", kind.name()),
        });
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let tmpdir =
            make_tmpdir(kind.name()).map_err(|e| format!("cannot make a temp dir: {e}"))?;
        SERVER_TMPDIRS.lock().unwrap().push(tmpdir.clone());
        let mut gc = None;
        let mut cmd = match kind {
            Kind::Wrangler => {
                let inspector = free_port().map_err(|e| format!("no free port: {e}"))?;
                let mut cmd = Command::new(&wrangler);
                cmd.arg("dev")
                    .args(["--ip", "127.0.0.1"])
                    .args(["--port", &port.to_string()])
                    .args(["--inspector-port", &inspector.to_string()])
                    .arg("--persist-to")
                    .arg(&tmpdir);
                for (k, v) in vars {
                    cmd.arg("--var").arg(format!("{k}:{v}"));
                }
                cmd
            }
            Kind::Miniflare => {
                let script = root.join("bench/miniflare.mjs");
                let mut cmd = Command::new("node");
                cmd.arg(script)
                    .args(["--port", &port.to_string()])
                    .arg("--root")
                    .arg(root)
                    .arg("--persist-to")
                    .arg(&tmpdir);
                for (k, v) in vars {
                    cmd.arg("--var").arg(format!("{k}:{v}"));
                }
                if serves == Serves::Floor {
                    cmd.arg("--floor");
                }
                let gc_port = free_port().map_err(|e| format!("no free port: {e}"))?;
                cmd.args(["--gc-port", &gc_port.to_string()]);
                gc = Some(SocketAddr::from(([127, 0, 0, 1], gc_port)));
                cmd
            }
        };
        cmd.current_dir(root);
        Server::spawn(kind, cmd, tmpdir, log, log_path, port, gc, startup, true)
    }

    /// nginx with nchan, from bench/nchan.conf (see there), in the foreground.
    fn start_nchan(
        root: &Path,
        startup: Duration,
        log_dir: &Path,
        log_name: Option<&str>,
    ) -> Result<Server, String> {
        let template = root.join("bench/nchan.conf");
        let conf = fs::read_to_string(&template)
            .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
        if !Path::new(NCHAN_MODULE).exists() {
            return Err(format!(
                "{NCHAN_MODULE} not found: run sh bench/setup-nchan.sh"
            ));
        }
        fs::create_dir_all(log_dir).ok();
        let log_path = log_dir.join(format!("{}.log", log_name.unwrap_or("nchan")));
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let tmpdir = make_tmpdir("nchan").map_err(|e| format!("cannot make a temp dir: {e}"))?;
        SERVER_TMPDIRS.lock().unwrap().push(tmpdir.clone());
        let conf = conf
            .replace("@DIR@", &tmpdir.display().to_string())
            .replace("@PORT@", &port.to_string());
        let conf_path = tmpdir.join("nginx.conf");
        fs::write(&conf_path, conf)
            .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&tmpdir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"])
            .current_dir(&tmpdir);
        Server::spawn(
            Kind::Miniflare,
            cmd,
            tmpdir,
            log,
            log_path,
            port,
            None,
            startup,
            false,
        )
    }

    /// Starts `cmd` in its own process group, logs its output and waits until it is
    /// ready: its `Ready on` line (if `ready_line`) and a connection accepted.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        kind: Kind,
        mut cmd: Command,
        tmpdir: PathBuf,
        log: fs::File,
        log_path: PathBuf,
        port: u16,
        gc: Option<SocketAddr>,
        startup: Duration,
        ready_line: bool,
    ) -> Result<Server, String> {
        let name = cmd.get_program().to_string_lossy().into_owned();
        cmd.env("SSE_EDGE_SKIP_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // If the bench dies without cleaning up (SIGKILL), its direct child is told.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmpdir);
                return Err(format!("cannot start {name}: {e}"));
            }
        };
        let pgid = child.id() as i32;
        SERVER_PGIDS.lock().unwrap().push(pgid);
        let log = std::sync::Arc::new(Mutex::new(log));
        let (tx, rx) = mpsc::channel::<String>();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for (stream, tag) in [(out, "out"), (err, "err")] {
            let tx = tx.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut f) = log.lock() {
                        let _ = writeln!(f, "[{tag}] {line}");
                    }
                    if line.contains("changed, restarting")
                        || line.contains("Reloading local server")
                    {
                        SERVER_RELOADS.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);

        let mut server = Server {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: Some(child),
            pgid,
            tmpdir: Some(tmpdir),
            log_path: log_path.clone(),
            gc,
        };
        let deadline = Instant::now() + startup;
        let mut recent: Vec<String> = Vec::new();
        // nginx prints nothing when it is ready: only the connection tells.
        loop {
            if !ready_line {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} did not print `Ready on` within {}s; last output:\n{}\n(full log: {})",
                    kind.name(),
                    startup.as_secs(),
                    recent.join("\n"),
                    log_path.display()
                ));
            }
            match rx.recv_timeout(left.min(Duration::from_millis(250))) {
                Ok(line) => {
                    if line.contains("Ready on") {
                        break;
                    }
                    recent.push(line);
                    if recent.len() > 30 {
                        recent.remove(0);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{} exited ({status}) before it was ready; last output:\n{}\n(full log: {})",
                        kind.name(),
                        recent.join("\n"),
                        log_path.display()
                    ));
                }
            }
        }
        if !ready_line {
            // nginx checks its configuration first, and exits at once if it is wrong.
            std::thread::sleep(Duration::from_millis(300));
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                let lines: Vec<String> = rx.try_iter().collect();
                return Err(format!(
                    "{name} exited ({status}) at start:\n{}\n(full log: {})",
                    lines.join("\n"),
                    log_path.display()
                ));
            }
        }
        // Keep draining output in the background so the pipes never fill up.
        std::thread::spawn(move || for _ in rx {});
        server.wait_until_accepting(deadline)?;
        Ok(server)
    }

    fn wait_until_accepting(&self, deadline: Instant) -> Result<(), String> {
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} does not accept connections on {}",
                    self.kind.name(),
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let members = tree_pids(self.pgid);
            kill_group(self.pgid, &members, Duration::from_secs(5));
            let _ = child.wait();
            reap_exited_children();
            SERVER_PGIDS.lock().unwrap().retain(|&g| g != self.pgid);
        }
        if let Some(dir) = self.tmpdir.take() {
            let _ = fs::remove_dir_all(&dir);
            SERVER_TMPDIRS.lock().unwrap().retain(|d| *d != dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to the group (and to tree members that left it), wait up to `grace`, SIGKILL.
fn kill_group(pgid: i32, members: &[i32], grace: Duration) {
    if pgid <= 0 {
        return;
    }
    unsafe {
        libc::killpg(pgid, libc::SIGTERM);
        for &pid in members {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let alive = group_pids(pgid)
            .into_iter()
            .chain(members.iter().copied())
            .any(pid_alive);
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
        for &pid in members {
            if pid_alive(pid) {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // A zombie still "exists" for kill(0); look at its state instead.
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|st| st.state != 'Z')
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (call before any other thread or the
/// runtime starts, so that all inherit it) and starts a thread that, on one of them, stops
/// the server's process group, removes its temp dir and exits.
pub fn install_signal_thread() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                return;
            }
            eprintln!("\nsse-bench: got signal {sig}, stopping the server and exiting");
            let pgids = SERVER_PGIDS.lock().map(|g| g.clone()).unwrap_or_default();
            for pgid in pgids.into_iter().filter(|&g| g > 0) {
                let members = tree_pids(pgid);
                kill_group(pgid, &members, Duration::from_secs(3));
            }
            let dirs = SERVER_TMPDIRS.lock().map(|d| d.clone()).unwrap_or_default();
            for dir in dirs {
                let _ = fs::remove_dir_all(dir);
            }
            std::process::exit(128 + sig);
        });
    }
}

/// Raises the soft RLIMIT_NOFILE to cover `wanted` descriptors (as far as the hard limit
/// allows). Returns the soft limit in force and, when it falls short, a message.
pub fn raise_nofile(wanted: u64) -> (u64, Option<String>) {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, Some("cannot read RLIMIT_NOFILE".into()));
        }
        let mut hard = lim.rlim_max as u64;
        if hard < wanted {
            // Raising the hard limit works when privileged (root / CAP_SYS_RESOURCE).
            let raised = libc::rlimit {
                rlim_cur: wanted as libc::rlim_t,
                rlim_max: wanted as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                hard = wanted;
                lim = raised;
            }
        }
        let target = wanted.min(hard);
        if (lim.rlim_cur as u64) < target {
            lim.rlim_cur = target as libc::rlim_t;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return (
                    lim.rlim_cur as u64,
                    Some(format!("setrlimit(RLIMIT_NOFILE, {target}) failed")),
                );
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let soft = lim.rlim_cur as u64;
        let msg = (soft < wanted).then(|| {
            format!(
                "RLIMIT_NOFILE is {soft} (hard limit {hard}) but about {wanted} descriptors are wanted; \
                 connections may fail with EMFILE. Raise the hard limit (e.g. `ulimit -Hn {wanted}` as root, \
                 or LimitNOFILE= / /etc/security/limits.conf) or run fewer listeners."
            )
        });
        (soft, msg)
    }
}

fn ticks_per_second() -> f64 {
    procfs::ticks_per_second().max(1) as f64
}

/// CPU time (user + system) used so far by the live processes of the tree at `root`,
/// summed by process name.
pub fn tree_cpu_by_name(root: i32) -> Vec<(String, f64)> {
    let pids = tree_pids(root);
    let mut out: Vec<(String, f64)> = Vec::new();
    for s in all_stats().iter().filter(|s| pids.contains(&s.pid)) {
        add_by_name(
            &mut out,
            &s.comm,
            (s.utime + s.stime) as f64 / ticks_per_second(),
        );
    }
    out
}

/// Adds `value` to `name`'s entry, in first-seen order.
pub fn add_by_name<T: std::ops::AddAssign>(list: &mut Vec<(String, T)>, name: &str, value: T) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 += value,
        None => list.push((name.to_string(), value)),
    }
}

/// CPU time (user + system, all threads) used so far by this process alone.
pub fn own_cpu_seconds() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / ticks_per_second())
        .unwrap_or(0.0)
}

/// Makes this process the reaper of its orphaned descendants (wrangler's workerd children
/// outlive the node process that started them; without this they stay zombies when PID 1
/// does not reap).
pub fn become_subreaper() {
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Reaps every exited child (see `become_subreaper`).
fn reap_exited_children() {
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

fn all_stats() -> Vec<procfs::process::Stat> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(|p| p.ok()?.stat().ok()).collect()
}

fn group_pids(pgid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.pgrp == pgid)
        .map(|s| s.pid)
        .collect()
}

/// The processes of the group `root` leads plus all descendants of `root` (a child that
/// made its own group is still counted).
pub fn tree_pids(root: i32) -> Vec<i32> {
    let stats = all_stats();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut set: HashSet<i32> = HashSet::new();
    for s in &stats {
        children.entry(s.ppid).or_default().push(s.pid);
        if s.pgrp == root && s.state != 'Z' {
            set.insert(s.pid);
        }
    }
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if stats.iter().any(|s| s.pid == p && s.state != 'Z') {
            set.insert(p);
        }
        if let Some(kids) = children.get(&p) {
            stack.extend(kids.iter().copied().filter(|k| !set.contains(k)));
        }
    }
    let mut v: Vec<i32> = set.into_iter().collect();
    v.sort_unstable();
    v
}

/// Resident memory of a process tree: all of it, and its workerd processes alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rss {
    pub group_kb: u64,
    pub workerd_kb: u64,
}

/// `VmRSS` of every live process of the tree rooted at `root`, by process name.
pub fn tree_memory(root: i32) -> Vec<(String, u64)> {
    let mut by_name = Vec::new();
    for pid in tree_pids(root) {
        let Ok(status) = procfs::process::Process::new(pid).and_then(|p| p.status()) else {
            continue;
        };
        add_by_name(&mut by_name, &status.name, status.vmrss.unwrap_or(0));
    }
    by_name
}

/// The tree's resident memory in all and in its workerd processes.
pub fn rss(root: i32) -> Rss {
    let by_name = tree_memory(root);
    Rss {
        group_kb: by_name.iter().map(|(_, kb)| kb).sum(),
        workerd_kb: by_name
            .iter()
            .filter(|(name, _)| name == "workerd")
            .map(|(_, kb)| kb)
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tree_has_memory_and_cpu() {
        let me = std::process::id() as i32;
        assert!(tree_pids(me).contains(&me));
        let rss = rss(me);
        assert!(rss.group_kb > 0);
        assert_eq!(rss.workerd_kb, 0, "no workerd below a test");
        let _burn: u64 = (0..5_000_000u64).map(std::hint::black_box).sum();
        assert!(own_cpu_seconds() > 0.0);
    }

    #[test]
    fn sums_by_name_in_first_seen_order() {
        let mut v = Vec::new();
        add_by_name(&mut v, "node", 1);
        add_by_name(&mut v, "workerd", 2);
        add_by_name(&mut v, "node", 3);
        assert_eq!(v, [("node".to_string(), 4), ("workerd".to_string(), 2)]);
    }
}
