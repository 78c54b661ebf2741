//! The client commands through the real `turnstile` binary against a real `turnstile serve --demo`:
//! the README's quickstart blocks run as written, the `--json` forms, errors, and every way to name
//! the node (`--server` with an address or a host name, `--node` from a config, TLS with `--ca`),
//! including from a directory without `cluster.toml`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, ServerProcess};

const SECRET: &str = "client-cli-test-secret-0123456789";
const DEMO_EVENT: &str = "evt_00000000000000e1";
/// A debug build opening a fresh data directory and seeding the demo data.
const START_WAIT_MAX: Duration = Duration::from_secs(60);
/// One client command; the quickstart as a whole gets several.
const COMMAND_WAIT_MAX: Duration = Duration::from_secs(30);
const QUICKSTART_WAIT_MAX: Duration = Duration::from_secs(180);
/// What the README's commands start with; the test runs the binary it built instead.
const README_PREFIX: &str = "cargo run -q --release -p turnstile --";
/// Environment the client commands read: cleared so the caller's shell cannot steer a test.
const CLIENT_ENV: [&str; 4] = ["TURNSTILE_SERVER", "TURNSTILE_TOKEN", "TURNSTILE_USER", "TURNSTILE_AUTH_SECRET"];

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_turnstile")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the gateway crate is in the workspace").to_path_buf()
}

/// A `turnstile serve --demo` process (`common::ServerProcess`, handed its listening socket).
/// Dropping it kills and reaps the process (also when a test panics), and on a panic prints the
/// tail of its log.
struct Node {
    process: ServerProcess,
    directory: tempfile::TempDir,
}

impl Node {
    /// Starts a node with `extra_config` appended to a config holding the secret, and waits
    /// (bounded) until its log says it serves (not `ServerProcess::wait_serving`, whose health
    /// check is plaintext: some of these nodes serve TLS).
    fn start(extra_config: &str) -> Self {
        Self::start_with_secret(SECRET, extra_config)
    }

    fn start_with_secret(secret: &str, extra_config: &str) -> Self {
        let directory = tempfile::Builder::new().prefix("turnstile-cli-").tempdir().expect("a temporary directory");
        let config_path = directory.path().join("node.toml");
        std::fs::write(
            &config_path,
            format!("[auth]\nsecret = \"{secret}\"\n\n[log]\nlevel = \"info\"\n\n{extra_config}"),
        )
        .expect("the config is written");
        let log_path = directory.path().join("node.log");
        let mut command = Command::new(binary());
        command
            .args(["serve", "--demo", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(directory.path().join("data"))
            .current_dir(directory.path())
            .env_remove("RUST_LOG")
            .env_remove("TURNSTILE_AUTH_SECRET");
        let listener = common::local_listener();
        let process = ServerProcess::spawn(command, &listener, &log_path);
        let mut node = Self { process, directory };
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&node.process.log).unwrap_or_default();
            if log.lines().any(|line| line.contains("serving gRPC")) {
                return node;
            }
            if let Some(status) = node.process.child.try_wait().expect("the child can be polled") {
                panic!("the node exited ({status}) before serving:\n{log}");
            }
            assert!(started.elapsed() < START_WAIT_MAX, "the node did not serve within {START_WAIT_MAX:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn port(&self) -> u16 {
        self.process.address.port()
    }

    /// A client command at this node: `--server` given, no inherited settings, run from an empty
    /// directory (no cluster.toml), the secret in the environment.
    fn client(&self, arguments: &[&str]) -> Command {
        let mut command = client_command(arguments);
        command.arg("--server").arg(self.process.address.to_string()).env("TURNSTILE_AUTH_SECRET", SECRET);
        command
    }

    /// Waits (bounded) until search finds the demo events: the index commits shortly after the
    /// seeding, and the quickstart's first command is a search.
    fn wait_searchable(&self) {
        let started = Instant::now();
        loop {
            let output = run(self.client(&["search", "lanterns", "-q"]));
            if output.success && output.stdout.contains(DEMO_EVENT) {
                return;
            }
            assert!(started.elapsed() < START_WAIT_MAX, "search never found the demo event: {output:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- tail of the node log ({}) ---\n{}",
                self.directory.path().display(),
                self.process.log_tail(40)
            );
        }
    }
}

/// The binary with `arguments`, clean of the client environment, in a fresh empty directory.
fn client_command(arguments: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.args(arguments).current_dir(empty_directory());
    for variable in CLIENT_ENV {
        command.env_remove(variable);
    }
    command
}

/// An empty directory that outlives the command (kept under the system's temporary directory).
fn empty_directory() -> PathBuf {
    tempfile::Builder::new().prefix("turnstile-cli-empty-").tempdir().expect("a temporary directory").keep()
}

#[derive(Debug)]
struct Finished {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(command: Command) -> Finished {
    run_within(command, COMMAND_WAIT_MAX)
}

/// Runs `command` to its end, killing it (and failing the test) past `within`.
fn run_within(mut command: Command, within: Duration) -> Finished {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawns");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            break Some(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let finished = Finished {
        success: status.is_some_and(|status| status.success()),
        code: status.and_then(|status| status.code()),
        stdout: stdout_reader.join().expect("the stdout reader ends"),
        stderr: stderr_reader.join().expect("the stderr reader ends"),
    };
    assert!(status.is_some(), "{command:?} did not finish within {within:?}: {finished:?}");
    finished
}

fn succeeded(finished: Finished) -> String {
    assert!(finished.success, "the command failed: {finished:?}");
    finished.stdout
}

fn json(finished: Finished) -> Value {
    let stdout = succeeded(finished);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
}

fn section<'a>(event: &'a Value, section_id: &str) -> &'a Value {
    event["availability"]
        .as_array()
        .expect("availability is a list")
        .iter()
        .find(|section| section["section_id"] == section_id)
        .unwrap_or_else(|| panic!("no section {section_id} in {event}"))
}

/// The README's `<!-- quickstart -->` blocks, in order.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(marker) = rest.find("<!-- quickstart -->") {
        let after = &rest[marker..];
        let start = after.find("```sh\n").expect("a ```sh block follows the quickstart marker") + "```sh\n".len();
        let length = after[start..].find("```").expect("the quickstart block is closed");
        blocks.push(after[start..start + length].to_string());
        rest = &after[start + length..];
    }
    blocks
}

/// The README's quickstart, run as written with `bash -euo pipefail` against a fresh demo node:
/// the only change is the binary's path for `cargo run ...` and the node's address in
/// TURNSTILE_SERVER. Afterwards the buyer has exactly the booking the quickstart made.
#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md is readable");
    let blocks = quickstart_blocks(&readme);
    assert!(blocks.len() >= 2, "the README marks its quickstart blocks: found {}", blocks.len());
    for block in &blocks {
        for line in block.lines().filter(|line| line.contains("turnstile")) {
            assert!(line.contains(README_PREFIX), "a quickstart line does not use '{README_PREFIX}': {line}");
        }
    }
    let script = blocks.join("\n").replace(README_PREFIX, &format!("'{}'", binary()));

    let node = Node::start("");
    node.wait_searchable();
    let before = json(node.client(&["view", DEMO_EVENT, "--json"]).finish());
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-x", "-c", &script])
        .current_dir(workspace_root())
        .env("TURNSTILE_SERVER", node.process.address.to_string())
        .env("TURNSTILE_AUTH_SECRET", SECRET);
    for variable in ["TURNSTILE_TOKEN", "TURNSTILE_USER"] {
        bash.env_remove(variable);
    }
    let finished = run_within(bash, QUICKSTART_WAIT_MAX);
    let stdout = succeeded(finished);
    assert!(stdout.contains("Midnight Lanterns: Harbour Lights Tour"), "{stdout}");
    assert!(stdout.contains("The Quay Quartet: Evening Strings"), "the created event is shown: {stdout}");

    // The booking: two seats of section 101, confirmed with the quickstart's payment reference.
    let bookings = json(node.client(&["bookings", "--json", "--user", "alice"]).finish());
    let bookings = bookings["bookings"].as_array().expect("bookings is a list");
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    let booking = &bookings[0];
    assert_eq!(booking["event_id"], DEMO_EVENT);
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["payment_reference"], "psp-42");
    let seats: Vec<&str> =
        booking["tickets"].as_array().unwrap().iter().map(|ticket| ticket["seat_id"].as_str().unwrap()).collect();
    assert_eq!(seats.len(), 2, "{booking}");
    assert!(seats.iter().all(|seat| seat.starts_with("101:")), "{seats:?}");
    let booking_id = booking["booking_id"].as_str().unwrap();
    assert!(stdout.matches(booking_id).count() >= 2, "confirm and the bookings list both print {booking_id}: {stdout}");
    for seat in &seats {
        assert!(stdout.contains(seat), "the quickstart's output names the booked seat {seat}: {stdout}");
    }

    // Availability: two fewer in 101 (booked), none fewer in 105 (held, then released).
    let after = json(node.client(&["view", DEMO_EVENT, "--json"]).finish());
    let (before_101, after_101) = (section(&before, "101"), section(&after, "101"));
    assert_eq!(after_101["available"].as_u64().unwrap() + 2, before_101["available"].as_u64().unwrap());
    assert_eq!(after_101["booked"], 2);
    assert_eq!(section(&after, "105")["available"], section(&before, "105")["available"]);
    assert_eq!(section(&after, "105")["held"], 0);

    // The waiting room block: two seats of 102 held with the admission pass.
    let sale = json(node.client(&["view", "evt_00000000000000e2", "--json"]).finish());
    assert_eq!(section(&sale, "102")["held"], 2, "{sale}");
}

/// The README's curl calls, run as written with `bash -euo pipefail` against a fresh demo node with
/// the shipped development secret (as `serve --demo` with the shipped cluster.toml has): the only
/// change is the node's address. Afterwards bob has the booking the calls made.
#[test]
fn the_readme_http_calls_run_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md is readable");
    let marker = "<!-- http-quickstart -->";
    let after = &readme[readme.find(marker).expect("the README marks its HTTP block") + marker.len()..];
    let start = after.find("```sh\n").expect("a ```sh block follows the marker") + "```sh\n".len();
    let block = &after[start..start + after[start..].find("```").expect("the block is closed")];
    assert!(block.contains("curl") && block.contains("localhost:50051"), "{block}");

    let secret = turnstile::config::DEVELOPMENT_SECRET;
    let node = Node::start_with_secret(secret, "");
    let script = block.replace("localhost:50051", &node.process.address.to_string());
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-x", "-c", &script]).current_dir(workspace_root());
    let stdout = succeeded(run_within(bash, QUICKSTART_WAIT_MAX));
    assert!(stdout.contains(r#""name":"Midnight Lanterns: Harbour Lights Tour""#), "search and view: {stdout}");
    assert!(stdout.contains(r#""paymentReference":"psp-43""#), "the confirmation: {stdout}");

    let mut bookings = client_command(&["bookings", "--json", "--user", "bob"]);
    bookings.arg("--server").arg(node.process.address.to_string()).env("TURNSTILE_AUTH_SECRET", secret);
    let bookings = json(bookings.finish());
    let bookings = bookings["bookings"].as_array().expect("bookings is a list");
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    let seats: Vec<&str> =
        bookings[0]["tickets"].as_array().unwrap().iter().map(|ticket| ticket["seat_id"].as_str().unwrap()).collect();
    assert_eq!(seats, ["103:C:7", "103:C:8"]);
    assert_eq!(bookings[0]["status"], "confirmed");
}

/// Runs a command built by [`Node::client`] or [`client_command`] within the test's bound.
trait Finish {
    fn finish(self) -> Finished;
}

impl Finish for Command {
    fn finish(self) -> Finished {
        run(self)
    }
}

#[test]
fn json_output_errors_and_the_ways_to_name_the_node() {
    let node = Node::start("");

    // --json: the documented fields.
    let event = json(node.client(&["view", DEMO_EVENT, "--json", "--seats"]).finish());
    assert_eq!(event["event_id"], DEMO_EVENT);
    assert_eq!(event["status"], "on_sale");
    assert_eq!(event["venue"]["name"], "Harbour Arena");
    let floor = section(&event, "FLOOR");
    assert_eq!((floor["general_admission"].as_bool(), floor["total"].as_u64()), (Some(true), Some(1_000)));
    assert_eq!(section(&event, "101")["price"]["currency"], "EUR");
    let seats = event["seats"].as_array().expect("--seats lists the seats");
    assert_eq!(seats.len(), 2_500);
    assert!(seats.iter().all(|seat| seat["status"] == "available"));

    let hold =
        json(node.client(&["hold", DEMO_EVENT, "--section", "103", "-n", "2", "--user", "bob", "--json"]).finish());
    assert_eq!(hold["status"], "active");
    assert_eq!(hold["buyer_id"], "bob");
    assert_eq!(hold["tickets"].as_array().unwrap().len(), 2);
    assert!(hold["tickets"][0]["seat_id"].as_str().unwrap().starts_with("103:"), "{hold}");
    assert!(hold["expires_at"].as_str().unwrap().ends_with('Z'), "{hold}");
    let key = hold["idempotency_key"].as_str().expect("a generated key is reported").to_string();
    let hold_id = hold["hold_id"].as_str().unwrap().to_string();
    // The same key again answers the same hold.
    let again = node.client(&["hold", DEMO_EVENT, "--section", "103", "-n", "2", "--user", "bob", "--key", &key, "-q"]);
    assert_eq!(succeeded(again.finish()).trim(), hold_id);

    let booking = json(node.client(&["confirm", &hold_id, "--payment", "psp-7", "--user", "bob", "--json"]).finish());
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["hold_id"], hold_id.as_str());
    assert_eq!(booking["total"]["amount_minor"], 24_000);
    assert!(booking["tickets"][0]["code"].is_string(), "{booking}");
    let booking_id = booking["booking_id"].as_str().unwrap().to_string();
    let listed = json(node.client(&["bookings", "--user", "bob", "--json"]).finish());
    assert_eq!(listed["bookings"][0]["booking_id"], booking_id.as_str());
    assert!(listed.get("next_page_token").is_some(), "{listed}");
    let cancelled = json(node.client(&["cancel", &booking_id, "--user", "bob", "--json"]).finish());
    assert_eq!(cancelled["status"], "cancelled");

    let page = json(node.client(&["search", "--from", "2000-01-01", "--sort", "date", "--json"]).finish());
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{page}");
    assert!(events.iter().all(|event| event["event_id"].is_string() && event["available"].is_u64()), "{page}");

    // A hold of a seat that does not exist: the error names it, the exit code is not 0.
    let refused = node.client(&["hold", DEMO_EVENT, "101:A:1", "101:Z:99", "--user", "bob"]).finish();
    assert!(!refused.success, "{refused:?}");
    assert!(refused.stderr.starts_with("error: "), "{refused:?}");
    assert!(refused.stderr.contains("101:Z:99"), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    // The cancelled booking's seats are free again.
    let rehold = node.client(&["hold", DEMO_EVENT, &seats_of(&booking)[0], "--user", "carol", "-q"]);
    succeeded(rehold.finish());
    let unknown = node.client(&["view", "evt_000000000000ffff"]).finish();
    assert_eq!(unknown.code, Some(4), "NOT_FOUND exits 4: {unknown:?}");
    assert!(unknown.stderr.starts_with("error: NOT_FOUND: "), "{unknown:?}");

    // From an empty directory: --server and the secret in the environment are enough, for the
    // client commands and for status and token.
    succeeded(node.client(&["bookings", "--user", "bob"]).finish());
    let status = succeeded(node.client(&["status"]).finish());
    assert!(status.contains("node-1"), "{status}");
    let mut token = client_command(&["token", "--user", "dave"]);
    token.env("TURNSTILE_AUTH_SECRET", SECRET);
    let token = succeeded(token.finish()).trim().to_string();
    let mut with_token = node.client(&["bookings", "--token", &token]);
    with_token.env_remove("TURNSTILE_AUTH_SECRET");
    let with_token = with_token.finish();
    assert_eq!(succeeded(with_token).trim(), "no bookings");
    // ... but a buyer command with neither a token nor a secret says how to provide one.
    let mut anonymous = client_command(&["bookings", "--user", "bob", "--server"]);
    anonymous.arg(node.process.address.to_string());
    let anonymous = anonymous.finish();
    assert_eq!(anonymous.code, Some(1), "{anonymous:?}");
    assert!(
        anonymous.stderr.contains("--token") && anonymous.stderr.contains("TURNSTILE_AUTH_SECRET"),
        "{anonymous:?}"
    );
    // An explicit config that is missing is an error naming it.
    let missing = node.client(&["view", DEMO_EVENT, "--config", "nowhere.toml"]).finish();
    assert!(!missing.success && missing.stderr.contains("nowhere.toml"), "{missing:?}");

    // --node: the address from the config's [[nodes]].
    let directory = empty_directory();
    let config_path = directory.join("nodes.toml");
    std::fs::write(
        &config_path,
        format!(
            "[node]\nid = \"n1\"\n[auth]\nsecret = \"{SECRET}\"\n[[nodes]]\nid = \"n1\"\naddress = \"{}\"\n",
            node.process.address
        ),
    )
    .unwrap();
    let config = config_path.to_str().unwrap();
    let view = client_command(&["view", DEMO_EVENT, "--node", "n1", "--config", config]).finish();
    let text = succeeded(view);
    assert!(text.contains("Midnight Lanterns"), "{text}");
    let bookings = client_command(&["bookings", "--node", "n1", "--config", config, "--user", "bob"]).finish();
    succeeded(bookings);
    let unknown = client_command(&["view", DEMO_EVENT, "--node", "n9", "--config", config]).finish();
    assert!(!unknown.success && unknown.stderr.contains("'n9'") && unknown.stderr.contains("n1"), "{unknown:?}");
    // And a config in the working directory is read without --config.
    std::fs::copy(&config_path, directory.join("cluster.toml")).unwrap();
    let mut from_directory = Command::new(binary());
    from_directory.args(["bookings", "--node", "n1", "--user", "bob"]).current_dir(&directory);
    for variable in CLIENT_ENV {
        from_directory.env_remove(variable);
    }
    succeeded(from_directory.finish());

    // localhost:PORT, a host name rather than a socket address.
    let by_name = client_command(&["view", DEMO_EVENT, "--server", &format!("localhost:{}", node.port())]);
    assert!(succeeded(by_name.finish()).contains("Harbour Arena"));
    // Nothing listening: UNAVAILABLE's exit code, and the address in the message.
    let nowhere = client_command(&["view", DEMO_EVENT, "--server", "127.0.0.1:1"]).finish();
    assert_eq!(nowhere.code, Some(8), "{nowhere:?}");
    assert!(nowhere.stderr.contains("127.0.0.1:1"), "{nowhere:?}");
}

fn seats_of(booking: &Value) -> Vec<String> {
    booking["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ticket| ticket["seat_id"].as_str().unwrap().to_string())
        .collect()
}

/// `--ca` connects over TLS and checks the node's certificate against the host name (or
/// `--tls-domain`); without it the TLS port is not reachable.
#[test]
fn ca_connects_over_tls() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = empty_directory();
    let (certificate_file, private_key_file) = (files.join("node.crt"), files.join("node.key"));
    std::fs::write(&certificate_file, certified.cert.pem()).unwrap();
    std::fs::write(&private_key_file, certified.signing_key.serialize_pem()).unwrap();
    let node = Node::start(&format!(
        "[tls]\ncertificate_file = '{}'\nprivate_key_file = '{}'\n",
        certificate_file.display(),
        private_key_file.display()
    ));
    let ca = certificate_file.to_str().unwrap();
    let by_name = client_command(&["view", DEMO_EVENT, "--server", &format!("localhost:{}", node.port()), "--ca", ca]);
    assert!(succeeded(by_name.finish()).contains("Harbour Arena"));
    let by_address = node.client(&["bookings", "--user", "bob", "--ca", ca, "--tls-domain", "localhost"]);
    succeeded(by_address.finish());
    let plaintext = node.client(&["view", DEMO_EVENT]).finish();
    assert!(!plaintext.success, "{plaintext:?}");
}
