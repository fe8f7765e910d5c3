//! How a client gets its session negotiated with each server under test: Conclave over WHIP/WHEP,
//! Janus over its VideoRoom HTTP API (one long-polled Janus session, one handle per peer
//! connection). Blocking; runs on the signaling worker threads, never on the media thread.

use crate::http::Origin;
use crate::session_description::{
    remote_description, remote_from, LocalDescription, PublisherSsrcs, RemoteDescription,
};
use serde_json::{json, Value};
use sfu_core::sdp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Janus answers a long poll after 30 s without events; a little more than that.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(35);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

/// One peer connection to negotiate.
#[derive(Debug, Clone)]
pub struct JoinJob {
    pub client: usize,
    pub role: Role,
    pub local: LocalDescription,
    pub ssrcs: PublisherSsrcs,
    /// Subscribers: Janus feed ids to receive (Conclave fills receive slots by itself).
    pub feeds: Vec<u64>,
    /// Subscribers: receive m-lines to offer (WHEP).
    pub audio_slots: usize,
    pub video_slots: usize,
}

/// A negotiated peer connection, handed to the media thread.
#[derive(Debug)]
pub struct Joined {
    pub client: usize,
    /// Before the first HTTP request of this join.
    pub started: Instant,
    pub remote: RemoteDescription,
    /// Janus: the publisher's feed id.
    pub feed: Option<u64>,
    /// What `leave` needs: the WHIP/WHEP resource URL, or the Janus handle id.
    pub resource: String,
    /// The server sends its own (triggered) ICE checks and ignores DTLS until we answer one.
    pub server_checks_back: bool,
}

/// A server under test, as the signaling workers see it.
pub trait Target: Send + Sync {
    fn name(&self) -> &'static str;
    fn join(&self, job: &JoinJob) -> Result<Joined, String>;
    /// Best effort: ends one peer connection.
    fn leave(&self, resource: &str);
    /// Best effort: ends everything left (the Janus session).
    fn finish(&self);
}

/// Conclave: WHIP for publishers, WHEP for viewers, one room per scenario.
pub struct Conclave {
    origin: Origin,
    room: String,
}

impl Conclave {
    pub fn new(url: &str, room: &str) -> Result<Conclave, String> {
        Ok(Conclave {
            origin: Origin::parse(url)?,
            room: room.to_owned(),
        })
    }
}

impl Target for Conclave {
    fn name(&self) -> &'static str {
        "conclave"
    }

    fn join(&self, job: &JoinJob) -> Result<Joined, String> {
        let started = Instant::now();
        let (kind, offer) = match job.role {
            Role::Publisher => (
                "whip",
                job.local
                    .publisher_offer(job.ssrcs, &format!("pub{}", job.client)),
            ),
            Role::Subscriber => (
                "whep",
                job.local.viewer_offer(job.audio_slots, job.video_slots),
            ),
        };
        let path = format!("/{kind}/{}?name=loadgen-{}", self.room, job.client);
        let response = self
            .origin
            .request(
                "POST",
                &path,
                Some("application/sdp"),
                offer.as_bytes(),
                HTTP_TIMEOUT,
            )
            .map_err(|e| format!("{kind} POST: {e}"))?;
        if response.status != 201 {
            return Err(format!(
                "{kind} POST: HTTP {} {}",
                response.status,
                response.body.trim()
            ));
        }
        let resource = response
            .header("location")
            .ok_or_else(|| format!("{kind} 201 without Location"))?
            .to_owned();
        let remote = remote_description(&response.body, true)?;
        Ok(Joined {
            client: job.client,
            started,
            remote,
            feed: None,
            resource,
            server_checks_back: false,
        })
    }

    fn leave(&self, resource: &str) {
        let _ = self
            .origin
            .request("DELETE", resource, None, &[], Duration::from_secs(2));
    }

    fn finish(&self) {}
}

/// Janus VideoRoom over the plain HTTP transport.
pub struct Janus {
    inner: Arc<JanusSession>,
    room: u64,
}

struct JanusSession {
    origin: Origin,
    session: u64,
    next_transaction: AtomicU64,
    /// Asynchronous replies (`ack` now, `event` later on the long poll), by transaction.
    pending: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    stopped: AtomicBool,
}

impl Janus {
    /// Creates a Janus session, starts its long-poll thread and creates room `room` for
    /// `publishers` publishers.
    pub fn new(url: &str, room: u64, publishers: usize) -> Result<Janus, String> {
        let origin = Origin::parse(url)?;
        let created = post(
            &origin,
            "",
            &json!({ "janus": "create", "transaction": "create" }),
        )?;
        let session = created["data"]["id"]
            .as_u64()
            .ok_or("Janus create: no session id")?;
        let inner = Arc::new(JanusSession {
            origin,
            session,
            next_transaction: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
        });
        let poller = inner.clone();
        std::thread::Builder::new()
            .name("janus-poll".into())
            .spawn(move || poller.long_poll())
            .map_err(|e| format!("cannot start the Janus poller: {e}"))?;
        let janus = Janus { inner, room };
        let admin = janus.inner.attach()?;
        let body = json!({
            "request": "create", "room": room, "publishers": publishers.max(1),
            "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0, "fir_freq": 0,
            "notify_joining": false, "permanent": false,
        });
        let reply = janus.inner.message(admin, body, None)?;
        match reply["plugindata"]["data"]["videoroom"].as_str() {
            Some("created") => Ok(janus),
            _ => Err(format!(
                "Janus room create: {}",
                reply["plugindata"]["data"]
            )),
        }
    }
}

fn post(origin: &Origin, path: &str, body: &Value) -> Result<Value, String> {
    let text = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let response = origin
        .request("POST", path, Some("application/json"), &text, HTTP_TIMEOUT)
        .map_err(|e| format!("Janus POST {path}: {e}"))?;
    if response.status != 200 {
        return Err(format!("Janus POST {path}: HTTP {}", response.status));
    }
    let value: Value =
        serde_json::from_str(&response.body).map_err(|e| format!("Janus reply: {e}"))?;
    if value["janus"] == "error" {
        return Err(format!("Janus error: {}", value["error"]));
    }
    Ok(value)
}

impl JanusSession {
    fn transaction(&self) -> String {
        format!("t{}", self.next_transaction.fetch_add(1, Ordering::Relaxed))
    }

    fn attach(&self) -> Result<u64, String> {
        let request = json!({ "janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": self.transaction() });
        let reply = post(&self.origin, &format!("/{}", self.session), &request)?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| "Janus attach: no handle id".to_owned())
    }

    /// Sends a plugin message and returns its reply: the synchronous `success`, or the `event`
    /// the long poll delivers after an `ack`. A VideoRoom error in the reply is an `Err`.
    fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let transaction = self.transaction();
        let (send, receive) = mpsc::channel();
        // Registered before the POST: the event may beat the POST's own reply.
        self.lock_pending().insert(transaction.clone(), send);
        let mut request = json!({ "janus": "message", "transaction": transaction, "body": body });
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let result = post(
            &self.origin,
            &format!("/{}/{handle}", self.session),
            &request,
        )
        .and_then(|reply| match reply["janus"].as_str() {
            Some("ack") => receive.recv_timeout(HTTP_TIMEOUT).map_err(|_| {
                format!(
                    "Janus: no event for {} within {HTTP_TIMEOUT:?}",
                    request["body"]["request"]
                )
            }),
            _ => Ok(reply),
        });
        self.lock_pending().remove(&transaction);
        let reply = result?;
        let data = &reply["plugindata"]["data"];
        if data.get("error").is_some() {
            return Err(format!(
                "VideoRoom error {}: {}",
                data["error_code"], data["error"]
            ));
        }
        Ok(reply)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Value>>> {
        // A poisoned map only means a worker panicked; the map itself is still consistent.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn long_poll(&self) {
        let path = format!("/{}?maxev=50", self.session);
        while !self.stopped.load(Ordering::Relaxed) {
            let events = match self
                .origin
                .request("GET", &path, None, &[], LONG_POLL_TIMEOUT)
            {
                Ok(response) => {
                    serde_json::from_str::<Value>(&response.body).unwrap_or(Value::Null)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let events = match events {
                Value::Array(events) => events,
                other => vec![other],
            };
            for event in events {
                let Some(transaction) = event["transaction"].as_str() else {
                    continue;
                };
                if let Some(waiter) = self.lock_pending().remove(transaction) {
                    let _ = waiter.send(event);
                }
            }
        }
    }
}

impl Target for Janus {
    fn name(&self) -> &'static str {
        "janus"
    }

    fn join(&self, job: &JoinJob) -> Result<Joined, String> {
        let started = Instant::now();
        let janus = &self.inner;
        let handle = janus.attach()?;
        match job.role {
            Role::Publisher => {
                let offer = job
                    .local
                    .publisher_offer(job.ssrcs, &format!("pub{}", job.client));
                let body = json!({
                    "request": "joinandconfigure", "room": self.room, "ptype": "publisher",
                    "display": format!("loadgen-{}", job.client),
                });
                let reply =
                    janus.message(handle, body, Some(json!({ "type": "offer", "sdp": offer })))?;
                let feed = reply["plugindata"]["data"]["id"]
                    .as_u64()
                    .ok_or("Janus joined: no feed id")?;
                let answer = reply["jsep"]["sdp"]
                    .as_str()
                    .ok_or("Janus joined: no answer")?;
                let remote = remote_description(answer, true)?;
                Ok(Joined {
                    client: job.client,
                    started,
                    remote,
                    feed: Some(feed),
                    resource: handle.to_string(),
                    server_checks_back: true,
                })
            }
            Role::Subscriber => {
                let streams: Vec<Value> = job
                    .feeds
                    .iter()
                    .map(|feed| json!({ "feed": feed }))
                    .collect();
                let body = json!({ "request": "join", "room": self.room, "ptype": "subscriber", "streams": streams });
                let reply = janus.message(handle, body, None)?;
                let offer_text = reply["jsep"]["sdp"]
                    .as_str()
                    .ok_or("Janus attached: no offer")?;
                let offer = sdp::parse(offer_text).map_err(|e| format!("Janus offer: {e:?}"))?;
                let remote = remote_from(&offer, offer_text, false)?;
                let answer = job.local.answer(&offer)?;
                janus.message(
                    handle,
                    json!({ "request": "start" }),
                    Some(json!({ "type": "answer", "sdp": answer })),
                )?;
                Ok(Joined {
                    client: job.client,
                    started,
                    remote,
                    feed: None,
                    resource: handle.to_string(),
                    server_checks_back: true,
                })
            }
        }
    }

    fn leave(&self, resource: &str) {
        let request = json!({ "janus": "detach", "transaction": self.inner.transaction() });
        let _ = post(
            &self.inner.origin,
            &format!("/{}/{resource}", self.inner.session),
            &request,
        );
    }

    fn finish(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        let request = json!({ "janus": "destroy", "transaction": self.inner.transaction() });
        let _ = post(
            &self.inner.origin,
            &format!("/{}", self.inner.session),
            &request,
        );
    }
}
