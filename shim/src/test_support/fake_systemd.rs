//! A fake systemd Manager, served over a zbus peer-to-peer connection on one end of a
//! `UnixStream::pair`; the other end becomes a real [`Systemd`] client through
//! [`Systemd::over`], so the daemon's code, the signal router and the D-Bus marshalling are the
//! ones production runs. Only systemd is fake.
//!
//! Why a fake Manager on the wire rather than a trait in front of [`Systemd`]: the daemon's
//! systemd code is mostly about *which signal answers which call* (a job's `JobRemoved`, a
//! unit's `PropertiesChanged` with its exit), and a trait would replace exactly that with the
//! fake's idea of it. Here the client subscribes, registers its job waiters and matches job
//! paths as it does against PID 1 over the private socket (a peer connection, so every signal
//! is trusted, [`Transport::Private`]).
//!
//! It answers the calls the daemon makes (`StartTransientUnit`, `StopUnit`, `ResetFailedUnit`,
//! `GetUnit`, `LoadUnit`, `Subscribe`, `Properties.Get` of `Version`, `ActiveState` and
//! `LoadState`, `Properties.GetAll` of a service's `ExecMain*`), records each (method, unit,
//! transient unit properties), and plays systemd's part: a unit that exists is refused with
//! `UnitExists`, a job ends with a `JobRemoved` whose result the test chooses (or never), a
//! unit's main process exits with a `PropertiesChanged` as systemd sends it. What the in-unit
//! helper would do when a unit starts (write the init's pid file, report a failure, …) a test
//! scripts per unit with [`FakeSystemd::on_start`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use tokio::sync::Notify;
use unit_gen::escape::unit_object_path;
use zbus::connection::Builder;
use zbus::message::Type;
use zbus::{Connection, Message, MessageStream, OwnedObjectPath, OwnedVariant, Variant};

use crate::systemd::{error_names, Systemd, Transport};

const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// `CLD_EXITED`, as systemd reports a normal exit in `ExecMainCode`.
const CLD_EXITED: i32 = 1;
/// `CLD_KILLED`.
const CLD_KILLED: i32 = 2;

/// One method call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdCall {
    /// The method, e.g. `StartTransientUnit` or `Get`.
    pub method: String,
    /// The unit it names (the object path for property calls, empty for the manager's).
    pub target: String,
    /// A transient unit's properties, each value in D-Bus text form.
    pub properties: BTreeMap<String, String>,
}

/// How a job the fake queued ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// `JobRemoved` with this result (`done`, `failed`, `timeout`, …).
    Result(&'static str),
    /// No `JobRemoved`, ever (a job stuck in systemd).
    Never,
}

/// What a started unit does, as a test scripts it (a refused start is
/// [`FakeSystemd::fail_next`]).
pub enum StartAnswer {
    /// The unit is loaded and its start job ends so.
    Job(JobEnd),
}

type StartScript = Box<dyn FnOnce() -> StartAnswer + Send>;

/// A unit the fake has loaded.
#[derive(Debug, Clone)]
struct FakeUnit {
    active_state: String,
    /// `(ExecMainCode, ExecMainStatus, ExecMainPID)` once its main process exited.
    exit: Option<(i32, i32, u32)>,
}

#[derive(Default)]
struct State {
    calls: Vec<SystemdCall>,
    units: BTreeMap<String, FakeUnit>,
    start_scripts: HashMap<String, StartScript>,
    stop_ends: VecDeque<JobEnd>,
    failures: Vec<(String, &'static str)>,
    next_job: u32,
}

struct Shared {
    state: Mutex<State>,
    called: Notify,
    /// Every server-side connection, for signals.
    servers: Mutex<Vec<Connection>>,
}

/// The fake Manager; clones share it.
#[derive(Clone)]
pub struct FakeSystemd {
    shared: Arc<Shared>,
}

impl Default for FakeSystemd {
    fn default() -> FakeSystemd {
        FakeSystemd::new()
    }
}

impl FakeSystemd {
    /// A systemd with no units.
    pub fn new() -> FakeSystemd {
        FakeSystemd {
            shared: Arc::new(Shared { state: Mutex::default(), called: Notify::new(), servers: Mutex::default() }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new client connected to this systemd (one per daemon; a restarted daemon gets a new one).
    pub async fn client(&self) -> Systemd {
        let (server_end, client_end) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let server = Builder::unix_stream(server_end).server(zbus::Guid::generate()).p2p().build();
        let client = Builder::unix_stream(client_end).p2p().build();
        let (server, client) = tokio::try_join!(server, client).expect("a peer-to-peer D-Bus connection");
        self.shared.servers.lock().unwrap_or_else(PoisonError::into_inner).push(server.clone());
        tokio::spawn(self.clone().serve(server));
        Systemd::over(client, Transport::Private).await.expect("the client connects to the fake systemd")
    }

    /// When unit `name` is started, `script` plays the in-unit helper (writes files the daemon
    /// reads) and says how the start ends. Without a script a start job is simply done.
    pub fn on_start(&self, name: &str, script: impl FnOnce() -> StartAnswer + Send + 'static) {
        self.state().start_scripts.insert(name.to_string(), Box::new(script));
    }

    /// The next stop job ends so (each stop without one is done).
    pub fn next_stop_ends(&self, end: JobEnd) {
        self.state().stop_ends.push_back(end);
    }

    /// The next call of `method` fails with the D-Bus error `name`.
    pub fn fail_next(&self, method: &str, name: &'static str) {
        self.state().failures.push((method.to_string(), name));
    }

    /// Loads unit `name` in `active_state`, as one left from before (for adoption).
    pub fn add_unit(&self, name: &str, active_state: &str) {
        self.state().units.insert(name.to_string(), FakeUnit { active_state: active_state.into(), exit: None });
    }

    /// Unloads unit `name` (stopped and collected while no daemon watched).
    pub fn forget_unit(&self, name: &str) {
        self.state().units.remove(name);
    }

    /// Whether unit `name` is loaded.
    pub fn has_unit(&self, name: &str) -> bool {
        self.state().units.contains_key(name)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<SystemdCall> {
        self.state().calls.clone()
    }

    /// The calls of `method` so far, by target.
    pub fn targets_of(&self, method: &str) -> Vec<String> {
        self.calls().into_iter().filter(|call| call.method == method).map(|call| call.target).collect()
    }

    /// Waits until `method` was called for `target`; returns that call.
    pub async fn called(&self, method: &str, target: &str) -> SystemdCall {
        loop {
            let notified = self.shared.called.notified();
            let found = self.state().calls.iter().find(|call| call.method == method && call.target == target).cloned();
            if let Some(call) = found {
                return call;
            }
            notified.await;
        }
    }

    /// The main process `pid` of unit `name` exited with `code` (or was killed by signal
    /// `code` when `killed`): recorded, and announced as systemd does.
    pub async fn main_process_exited(&self, name: &str, pid: u32, code: i32, killed: bool) {
        let exit = (if killed { CLD_KILLED } else { CLD_EXITED }, code, pid);
        if let Some(unit) = self.state().units.get_mut(name) {
            unit.exit = Some(exit);
        }
        let changed = HashMap::from([
            ("ExecMainCode".to_string(), Variant::from(exit.0)),
            ("ExecMainStatus".to_string(), Variant::from(exit.1)),
            ("ExecMainPID".to_string(), Variant::from(exit.2)),
            ("ExecMainExitTimestamp".to_string(), Variant::from(1_700_000_000_000_000u64)),
        ]);
        self.emit(&unit_object_path(name), PROPERTIES, "PropertiesChanged", &(SERVICE, changed, Vec::<String>::new()))
            .await;
    }

    async fn emit<B>(&self, path: &str, interface: &str, member: &str, body: &B)
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let servers = self.shared.servers.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for server in servers {
            // A connection whose daemon is gone fails; the others still get the signal.
            let _ = server.emit_signal(None::<&str>, path, interface, member, body).await;
        }
    }

    async fn serve(self, connection: Connection) {
        let mut stream = MessageStream::from(&connection);
        while let Some(Ok(message)) = stream.next().await {
            if message.message_type() == Type::MethodCall {
                self.answer(&connection, &message).await;
            }
        }
    }

    async fn answer(&self, connection: &Connection, message: &Message) {
        let header = message.header();
        let method = header.member().map(|member| member.to_string()).unwrap_or_default();
        let path = header.path().map(|path| path.to_string()).unwrap_or_default();
        let body = message.body();
        let (target, properties) = match method.as_str() {
            "StartTransientUnit" => {
                type Body = (String, String, Vec<(String, OwnedVariant)>, Vec<(String, Vec<(String, OwnedVariant)>)>);
                let (name, _mode, properties, _auxiliary): Body = body.deserialize().expect("StartTransientUnit body");
                let properties =
                    properties.into_iter().map(|(name, value)| (name, format!("{}", Variant::from(value)))).collect();
                (name, properties)
            }
            "StartUnit" | "StopUnit" => {
                let (name, _mode): (String, String) = body.deserialize().expect("a unit and a mode");
                (name, BTreeMap::new())
            }
            "ResetFailedUnit" | "GetUnit" | "LoadUnit" => {
                let (name,): (String,) = body.deserialize().expect("a unit name");
                (name, BTreeMap::new())
            }
            _ => (if path == MANAGER_PATH { String::new() } else { path.clone() }, BTreeMap::new()),
        };
        let failure = {
            let mut state = self.state();
            state.calls.push(SystemdCall {
                method: method.clone(),
                target: target.clone(),
                properties: properties.clone(),
            });
            let position = state.failures.iter().position(|(failing, _)| *failing == method);
            position.map(|position| state.failures.remove(position).1)
        };
        self.shared.called.notify_waiters();
        if let Some(name) = failure {
            let _ = connection.reply_error(&header, name, &("injected by the test",)).await;
            return;
        }
        match method.as_str() {
            "Subscribe" => reply(connection, &header, &()).await,
            "StartTransientUnit" => self.start_transient(connection, &header, target).await,
            "StopUnit" => self.stop(connection, &header, &target).await,
            "ResetFailedUnit" => {
                let known = self.state().units.remove(&target).is_some();
                if known {
                    reply(connection, &header, &()).await;
                } else {
                    no_such_unit(connection, &header, &target).await;
                }
            }
            "GetUnit" => {
                if self.has_unit(&target) {
                    reply(connection, &header, &object_path(&target)).await;
                } else {
                    no_such_unit(connection, &header, &target).await;
                }
            }
            "LoadUnit" => reply(connection, &header, &object_path(&target)).await,
            "Get" => self.get_property(connection, &header, &path, body.deserialize().expect("Get body")).await,
            "GetAll" => self.get_all(connection, &header, &path).await,
            other => {
                let _ = connection
                    .reply_error(&header, "org.freedesktop.DBus.Error.UnknownMethod", &(format!("fake: {other}"),))
                    .await;
            }
        }
    }

    async fn start_transient(&self, connection: &Connection, header: &zbus::message::Header<'_>, name: String) {
        let script = {
            let mut state = self.state();
            if state.units.contains_key(&name) {
                None
            } else {
                Some(state.start_scripts.remove(&name))
            }
        };
        let Some(script) = script else {
            let _ = connection.reply_error(header, error_names::UNIT_EXISTS, &(format!("{name} exists"),)).await;
            return;
        };
        let StartAnswer::Job(end) = match script {
            Some(script) => script(),
            None => StartAnswer::Job(JobEnd::Result("done")),
        };
        let active_state = match end {
            JobEnd::Result("done") => "active",
            JobEnd::Never => "activating",
            JobEnd::Result(_) => "failed",
        };
        self.state().units.insert(name.clone(), FakeUnit { active_state: active_state.into(), exit: None });
        self.queue_job(connection, header, &name, end).await;
    }

    async fn stop(&self, connection: &Connection, header: &zbus::message::Header<'_>, name: &str) {
        if !self.has_unit(name) {
            no_such_unit(connection, header, name).await;
            return;
        }
        let end = self.state().stop_ends.pop_front().unwrap_or(JobEnd::Result("done"));
        if let (JobEnd::Result(result), Some(unit)) = (&end, self.state().units.get_mut(name)) {
            unit.active_state = if *result == "done" { "inactive" } else { "failed" }.into();
        }
        self.queue_job(connection, header, name, end).await;
    }

    /// Answers a job-creating call with a new job, then ends the job as `end` says.
    async fn queue_job(&self, connection: &Connection, header: &zbus::message::Header<'_>, unit: &str, end: JobEnd) {
        let id = {
            let mut state = self.state();
            state.next_job += 1;
            state.next_job
        };
        let job = OwnedObjectPath::try_from(format!("{MANAGER_PATH}/job/{id}")).expect("a job path");
        reply(connection, header, &job).await;
        if let JobEnd::Result(result) = end {
            self.emit(MANAGER_PATH, MANAGER, "JobRemoved", &(id, job, unit.to_string(), result.to_string())).await;
        }
    }

    async fn get_property(
        &self,
        connection: &Connection,
        header: &zbus::message::Header<'_>,
        path: &str,
        (interface, name): (String, String),
    ) {
        let value = match (path, interface.as_str(), name.as_str()) {
            (MANAGER_PATH, MANAGER, "Version") => Some(Variant::from("252.38-1")),
            (_, UNIT, "ActiveState") => self.unit_at(path).map(|unit| Variant::from(unit.active_state)),
            (_, UNIT, "LoadState") => {
                Some(Variant::from(if self.unit_at(path).is_some() { "loaded" } else { "not-found" }))
            }
            _ => None,
        };
        match value {
            Some(value) => reply(connection, header, &value).await,
            None => unknown_object(connection, header, path).await,
        }
    }

    async fn get_all(&self, connection: &Connection, header: &zbus::message::Header<'_>, path: &str) {
        let Some(unit) = self.unit_at(path) else {
            unknown_object(connection, header, path).await;
            return;
        };
        let (code, status, pid) = unit.exit.unwrap_or((0, 0, 0));
        let properties = HashMap::from([
            ("ExecMainCode".to_string(), Variant::from(code)),
            ("ExecMainStatus".to_string(), Variant::from(status)),
            ("ExecMainPID".to_string(), Variant::from(pid)),
            ("ExecMainExitTimestamp".to_string(), Variant::from(1_700_000_000_000_000u64)),
        ]);
        reply(connection, header, &properties).await;
    }

    fn unit_at(&self, path: &str) -> Option<FakeUnit> {
        self.state().units.iter().find(|(name, _)| unit_object_path(name) == path).map(|(_, unit)| unit.clone())
    }
}

fn object_path(unit: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(unit_object_path(unit)).expect("a unit's object path")
}

async fn reply<B>(connection: &Connection, header: &zbus::message::Header<'_>, body: &B)
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let _ = connection.reply(header, body).await;
}

async fn no_such_unit(connection: &Connection, header: &zbus::message::Header<'_>, unit: &str) {
    let _ = connection.reply_error(header, error_names::NO_SUCH_UNIT, &(format!("Unit {unit} not loaded."),)).await;
}

async fn unknown_object(connection: &Connection, header: &zbus::message::Header<'_>, path: &str) {
    let _ = connection.reply_error(header, error_names::UNKNOWN_OBJECT, &(format!("Unknown object {path}"),)).await;
}
