//! The command line: every command, flag and example `--help` shows.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use friend_protocol::quote::{LineItem, LineItemKind};
use friend_protocol::{
    DeclineReason, GeoPoint, JobId, Money, PaymentMethod, ReleaseReason, UnsuccessfulReason,
};
use std::path::PathBuf;

const TOP_EXAMPLES: &str = "\
Examples:
  friendctl simulate                          # the whole marketplace on this machine, with a report
  friendctl simulate --seed 7 --json > report.json
  friendctl serve                             # backend on http://127.0.0.1:8080, friendcore.db
  friendctl customer --token dev-customer-heidi book --service network.router_setup
  friendctl friend --token dev-friend-anna inbox

Exit codes: 0 ok, 1 other failure, 2 usage (also a malformed token), 3 backend unreachable,
4 token refused (also a token of the other role), 5 action refused, 6 accept not won,
7 simulation invariant broken, 8 wait timed out.";

/// FriendCore's command line: run the reference backend, simulate a whole marketplace on one
/// machine, or act as one Friend's or customer's device against a running backend.
#[derive(Debug, Parser)]
#[command(name = "friendctl", version, after_help = TOP_EXAMPLES)]
pub struct Cli {
    /// Logs on stderr (by default only errors): -v info, -vv debug, -vvv trace (RUST_LOG
    /// overrides). Coloured only on a terminal.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference backend on an embedded SQLite file (zero configuration).
    #[command(after_help = "\
Examples:
  friendctl serve
  friendctl serve --addr 127.0.0.1:0 --db /tmp/demo.db     # any free port; the address is printed
  friendctl serve --addr 0.0.0.0:8080                      # for a phone emulator on this host

A new database is seeded with the service catalog and development accounts (five Friends around
Zürich and Bern, two customers) whose tokens are printed. Ctrl-C stops it cleanly.")]
    Serve(ServeArgs),
    /// Simulate the marketplace for a compressed day: an embedded backend, many Friend and customer
    /// devices on the real core, real HTTP over loopback, and a report.
    #[command(after_help = "\
Examples:
  friendctl simulate
  friendctl simulate --seed 42 --friends 400 --customers 200 --jobs 1000
  friendctl simulate --friends 2000 --jobs 20000            # ~1 h on 2 cores, ~4.5 GB
  friendctl simulate --json > report.json                   # the report as JSON on stdout

Writes report.txt, report.json and time_to_accept.svg into --out. Exit code 7 when an invariant
(no double assignment, no lost write, every job ends terminal or assigned) is broken.")]
    Simulate(SimulateArgs),
    /// Act as a Friend's device against a running backend.
    #[command(after_help = "\
Examples:
  friendctl friend --token dev-friend-anna inbox --at 47.3769,8.5417 --radius 10
  friendctl friend --token dev-friend-anna accept JOB_ID
  friendctl friend --token dev-friend-anna appointment JOB_ID --in-minutes 20 --window 30
  friendctl friend --token dev-friend-anna on-my-way JOB_ID --eta-minutes 15
  friendctl friend --token dev-friend-anna check-in JOB_ID
  friendctl friend --token dev-friend-anna propose JOB_ID --item 'service:1:89.00:Router installation'
  friendctl friend --token dev-friend-anna --offline import JOB_ID PAYLOAD
  friendctl friend --token dev-friend-anna complete JOB_ID --payment cash")]
    Friend(FriendArgs),
    /// Act as a customer's device against a running backend.
    #[command(after_help = "\
Examples:
  friendctl customer --token dev-customer-heidi book --service network.router_setup
  friendctl customer --token dev-customer-heidi watch JOB_ID --timeout 600
  friendctl customer --token dev-customer-heidi cancel JOB_ID --preview
  friendctl customer --token dev-customer-heidi accept-quote JOB_ID
  friendctl customer --token dev-customer-heidi import JOB_ID PAYLOAD      # a Friend's QR payload
  friendctl customer --token dev-customer-heidi rate JOB_ID --stars 5")]
    Customer(CustomerArgs),
    /// Operate a running backend with the admin token: suspend or reactivate a Friend, rotate an
    /// account's token, read the audit and the metrics.
    #[command(after_help = "\
Examples:
  friendctl admin --token ADMIN suspend FRIEND_ID --reason 'three no-shows in a week'
  friendctl admin --token ADMIN reactivate FRIEND_ID
  friendctl admin --token ADMIN qualify FRIEND_ID --categories network,tv --radius 20
  friendctl admin --token ADMIN friends --limit 50            # ratings and completed jobs
  friendctl admin --token ADMIN rotate-token ACCOUNT_ID      # prints the new token once
  friendctl admin --token ADMIN audit --limit 20
  friendctl admin --token ADMIN metrics                      # the Prometheus text

The admin token is printed by `friendctl serve` at start (or set with --admin-token /
FRIEND_ADMIN_TOKEN there and here).")]
    Admin(AdminArgs),
}

/// `friendctl admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The backend's base URL (plain http only to loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token.
    #[arg(long, env = "FRIEND_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Give up when the backend has not answered within this many seconds (1–3,600; default 15,
    /// as the device commands); exit code 3, as for a backend that cannot be reached.
    #[arg(long, value_parser = count::<u64>(1, 3_600))]
    pub timeout: Option<u64>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Suspend a Friend: no offers or pushes, accepts refused; held jobs stay held.
    Suspend {
        /// The Friend's account id.
        friend: String,
        /// Why (recorded in the audit).
        #[arg(long)]
        reason: String,
    },
    /// Change a Friend's qualifications and travel radius (what is not given stays).
    Qualify {
        /// The Friend's account id.
        friend: String,
        /// Qualified categories, comma-separated (e.g. network,tv).
        #[arg(long, value_delimiter = ',')]
        categories: Option<Vec<String>>,
        /// Brand communities, comma-separated (empty: none).
        #[arg(long, value_delimiter = ',')]
        communities: Option<Vec<String>>,
        /// friend or pro.
        #[arg(long)]
        tier: Option<String>,
        /// Travel radius in km (1…50).
        #[arg(long)]
        radius: Option<u32>,
    },
    /// The Friends with their ratings and completed jobs, by name.
    Friends {
        /// At most this many (1…500).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Reactivate a suspended Friend.
    Reactivate {
        /// The Friend's account id.
        friend: String,
    },
    /// Give an account a new token (printed once); the old one stops working at once.
    RotateToken {
        /// The account id.
        account: String,
    },
    /// The recorded admin changes, newest first.
    Audit {
        /// At most this many (1…500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The metrics in the Prometheus text format.
    Metrics,
}

/// `friendctl serve`: the backend's own settings (flag > FRIEND_… variable > --config file >
/// default; see `friend_backend::settings`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address, database, admin token, seeding, drain bound, push gateways, config file.
    #[command(flatten)]
    pub server: friend_backend::settings::ServerArgs,
}

/// The longest slot a booking may ask for, as the backend checks it.
const MAX_SLOT_HOURS: u64 = friend_protocol::validate::MAX_SLOT_HOURS.unsigned_abs();

/// The longest `customer watch --timeout` (30 days). Bounded so the deadline (now + timeout)
/// cannot overflow: a huge value used to panic.
const MAX_WATCH_SECS: u64 = 30 * 24 * 3_600;

/// A whole number from `min` to `max`, refused with clap's usage error (exit 2) otherwise.
fn count<T>(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(min..=max)
}

/// `friendctl simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Simulated Friend devices (1–5,000: each is a real core with its own SQLite file and
    /// connections).
    #[arg(long, default_value_t = 200, value_parser = count::<usize>(1, 5_000))]
    pub friends: usize,
    /// Simulated customer devices (1–5,000).
    #[arg(long, default_value_t = 100, value_parser = count::<usize>(1, 5_000))]
    pub customers: usize,
    /// Jobs booked over the day (0–200,000).
    #[arg(long, default_value_t = 400, value_parser = count::<usize>(0, 200_000))]
    pub jobs: usize,
    /// Seed of every random draw (a random one is chosen and printed when omitted). Wall-clock
    /// figures (latencies, who wins a same-instant race) still vary between runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON on stdout (the text report is still written to --out).
    #[arg(long)]
    pub json: bool,
    /// Directory for report.txt, report.json and time_to_accept.svg (created when missing).
    #[arg(long, default_value = "target/friendctl-sim")]
    pub out: PathBuf,
    /// Share of Friends with the app in the foreground all day (long-polling).
    #[arg(long, default_value_t = 0.15)]
    pub foreground_share: f64,
    /// At most this many long-polling Friends.
    #[arg(long, default_value_t = 32)]
    pub foreground_max: usize,
    /// Share of Friends with flaky connectivity (tunnels: offline spells during the day).
    #[arg(long, default_value_t = 0.25)]
    pub flaky_share: f64,
    /// Keep the devices' and the backend's SQLite files in --out/data for inspection.
    #[arg(long)]
    pub keep_data: bool,
    /// The backend's database: a SQLite file in the run's directory when omitted, or an empty
    /// PostgreSQL database: `postgres://user[:password]@host[:port]/dbname`.
    #[arg(long, env = "FRIEND_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Backend instances on that database, devices spread over them (1–16; more than 1 needs
    /// PostgreSQL).
    #[arg(long, default_value_t = 1, value_parser = count::<usize>(1, 16))]
    pub instances: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// How a device command reaches the backend and where the device keeps its data.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// Backend base URL (plain http only to loopback).
    #[arg(
        long,
        env = "FRIENDCTL_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The account's bearer token (e.g. a dev token printed by `friendctl serve`), of the command's
    /// role: a Friend's for `friend`, a customer's for `customer`. Taken as given (not trimmed).
    #[arg(long, env = "FRIENDCTL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The device's SQLite database (default: friendctl-<role>-<token hash>.db in the current
    /// directory). Its data key is kept next to it in <db>.key.
    #[arg(long, env = "FRIENDCTL_DB", global = true)]
    pub db: Option<PathBuf>,
    /// Do not talk to the backend: read the cache, queue actions in the outbox (sent by a later
    /// command without --offline), exchange consent payloads by hand.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `friendctl friend`.
#[derive(Debug, Args)]
pub struct FriendArgs {
    /// Backend, token, database.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: FriendCommand,
}

/// What a Friend's device does.
#[derive(Debug, Subcommand)]
pub enum FriendCommand {
    /// Sync, then show the sync status, the outbox counts and the profile.
    Status,
    /// Open offers near a point, sorted by distance (from the cache after a sync).
    #[command(
        after_help = "Example: friendctl friend --token dev-friend-anna inbox --at 47.3769,8.5417 --radius 10"
    )]
    Inbox {
        /// Current position as LAT,LON (default: the registered home).
        #[arg(long, value_parser = parse_point)]
        at: Option<GeoPoint>,
        /// Radius in km (default: the registered travel radius).
        #[arg(long)]
        radius: Option<f64>,
        /// At most this many offers.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Race to accept an offer. Exit code 6 when another Friend was first or it is gone.
    #[command(after_help = "Example: friendctl friend --token dev-friend-anna accept 0d6c3f1e-…")]
    Accept {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Decline an offer with a reason, so it can go to others.
    Decline {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Why.
        #[arg(long, value_enum, default_value_t = DeclineArg::NoTime)]
        reason: DeclineArg,
    },
    /// The Friend's jobs (from the cache after a sync).
    Jobs,
    /// One job with full details (address and contact once won).
    Show {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Record the agreed visit of a job you hold (queued; works offline): a now-job's arrival
    /// window, or a slot job's slot confirmed or moved by agreement.
    #[command(after_help = "\
A now-job's window is at most 4 hours and ends within 12 hours; a slot job's visit is its booked
slot (confirmed) or another one of at most 12 hours (moved: the customer may decline it).

Examples:
  friendctl friend --token dev-friend-anna appointment JOB_ID --in-minutes 20 --window 30
  friendctl friend --token dev-friend-anna appointment JOB_ID \\
    --start 2030-05-01T14:00:00Z --end 2030-05-01T15:00:00Z")]
    Appointment {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Earliest arrival (RFC 3339).
        #[arg(long, requires = "end", required_unless_present = "in_minutes")]
        start: Option<chrono::DateTime<chrono::Utc>>,
        /// Latest arrival (RFC 3339).
        #[arg(long, requires = "start")]
        end: Option<chrono::DateTime<chrono::Utc>>,
        /// Instead of --start/--end: the window opens this many minutes from now (server clock).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        in_minutes: Option<u32>,
        /// The window's length in minutes, with --in-minutes.
        #[arg(long, default_value_t = 30, requires = "in_minutes")]
        window: u32,
    },
    /// Tell the customer you are on the way, with an arrival estimate (queued; works offline). A
    /// newer estimate replaces one still waiting in the outbox.
    #[command(after_help = "\
With --from the estimate is computed on this device, in a straight line from the given position
to the job at the documented travel speed; the position itself is never stored or sent.

Examples:
  friendctl friend --token dev-friend-anna on-my-way JOB_ID --eta-minutes 25
  friendctl friend --token dev-friend-anna on-my-way JOB_ID --from 47.3779,8.5403")]
    OnMyWay {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Arriving in this many minutes (at most 360).
        #[arg(long, required_unless_present = "from", conflicts_with = "from")]
        eta_minutes: Option<u32>,
        /// Estimate from this position, LAT,LON (used on this device only).
        #[arg(long, value_parser = parse_point)]
        from: Option<GeoPoint>,
    },
    /// Give a job you hold back before arriving, saying why; it is offered to other Friends again.
    #[command(
        after_help = "Example: friendctl friend --token dev-friend-anna release JOB_ID --reason customer-unreachable"
    )]
    Release {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Why.
        #[arg(long, value_enum)]
        reason: ReleaseArg,
        /// A note for the platform (never shown to the customer).
        #[arg(long)]
        note: Option<String>,
    },
    /// Check in on site (queued; works offline).
    CheckIn {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Propose a quote; prints the signed payload to show the customer (as a QR code).
    #[command(after_help = "\
Items are KIND:QUANTITY:UNIT_PRICE:TEXT with KIND one of service, adjustment, extra_service,
time_unit, material, discount and the price in francs (a discount is negative).

Example:
  friendctl friend --token dev-friend-anna propose JOB_ID \\
    --item 'service:1:89.00:Router installation' --item 'material:1:12.50:LAN cable 5 m'")]
    Propose(QuoteDraft),
    /// The job's negotiation as this device knows it.
    Quote {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Accept the customer's pending proposal; prints the signed payload for the customer.
    AcceptQuote(QuoteAnswer),
    /// Reject the customer's pending proposal.
    RejectQuote(QuoteAnswer),
    /// Import a payload from the customer's device (verified offline); "-" reads it from stdin.
    Import {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// The payload text.
        payload: String,
    },
    /// Complete at the agreed total (queued; works offline).
    Complete {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// How the customer pays.
        #[arg(long, value_enum, default_value_t = PaymentArg::Online)]
        payment: PaymentArg,
    },
    /// Hand the job to the company's field service.
    Escalate {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// A note for the field service.
        #[arg(long)]
        note: Option<String>,
    },
    /// Check out without success (e.g. the customer is absent).
    Unsuccessful {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Why.
        #[arg(long, value_enum, default_value_t = UnsuccessfulArg::CustomerAbsent)]
        reason: UnsuccessfulArg,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Every outbox item with its outcome.
    Outbox,
    /// The commission ledger (online).
    Ledger,
    /// Register this device's push token, or remove it (queued; works offline).
    #[command(after_help = PUSH_TOKEN_HELP)]
    PushToken(PushTokenArgs),
}

/// `friendctl customer`.
#[derive(Debug, Args)]
pub struct CustomerArgs {
    /// Backend, token, database.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: CustomerCommand,
}

/// What a customer's device does.
#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Sync, then show the sync status and the outbox counts.
    Status,
    /// The service catalog with orientation prices.
    Catalog,
    /// Book a job (now, or a slot); prints the job id once the backend has it.
    #[command(after_help = "\
Examples:
  friendctl customer --token dev-customer-heidi book --service network.router_setup
  friendctl customer --token dev-customer-heidi book --service tv.setup --at 46.948,7.4474 \\
    --street 'Bundesgasse 3' --postal-code 3011 --city Bern --slot-start 2030-05-01T14:00:00Z
  friendctl customer --token dev-customer-heidi book --service mobile.lesson --remote")]
    Book(BookArgs),
    /// The customer's jobs with live status.
    Jobs,
    /// One job with live status and details.
    Show {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Follow a job live (long-poll) and print every status change until it ends.
    Watch {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Give up after this many seconds (0–2,592,000, i.e. at most 30 days; exit code 8).
        #[arg(long, value_parser = count::<u64>(0, MAX_WATCH_SECS))]
        timeout: Option<u64>,
    },
    /// The job's negotiation as this device knows it.
    Quote {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Accept the Friend's pending proposal; prints the signed payload for the Friend's device.
    AcceptQuote(QuoteAnswer),
    /// Reject the Friend's pending proposal.
    RejectQuote(QuoteAnswer),
    /// Counter-propose a quote; prints the signed payload.
    Counter(QuoteDraft),
    /// Import a payload from the Friend's device (verified offline); "-" reads it from stdin.
    Import {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// The payload text.
        payload: String,
    },
    /// Cancel a job before the Friend is on site. Once a Friend holds it, a late cancellation owes
    /// a compensation fee: --preview shows it and changes nothing.
    #[command(after_help = "\
Examples:
  friendctl customer --token dev-customer-heidi cancel JOB_ID --preview
  friendctl customer --token dev-customer-heidi cancel JOB_ID")]
    Cancel {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// Only show what cancelling now would cost (computed on this device; works offline).
        #[arg(long)]
        preview: bool,
    },
    /// Decline the visit the Friend moved away from the booked slot: the job is offered again.
    DeclineVisit {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
    },
    /// Rate a completed job, once.
    Rate {
        /// The job id.
        #[arg(value_parser = parse_job)]
        job: JobId,
        /// 1 to 5.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        stars: u8,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Every outbox item with its outcome.
    Outbox,
    /// Register this device's push token, or remove it (queued; works offline).
    #[command(after_help = PUSH_TOKEN_HELP)]
    PushToken(PushTokenArgs),
}

/// What `customer book` takes.
#[derive(Debug, Args)]
pub struct BookArgs {
    /// Catalog service id (see `catalog`).
    #[arg(long)]
    pub service: String,
    /// Where, as LAT,LON (default: Zürich main station).
    #[arg(long, value_parser = parse_point)]
    pub at: Option<GeoPoint>,
    /// Street and number.
    #[arg(long, default_value = "Bahnhofplatz 1")]
    pub street: String,
    /// Postal code.
    #[arg(long, default_value = "8001")]
    pub postal_code: String,
    /// City.
    #[arg(long, default_value = "Zürich")]
    pub city: String,
    /// Contact name (default: the account's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Contact phone.
    #[arg(long, default_value = "+41 79 000 00 00")]
    pub phone: String,
    /// What you need, in your words.
    #[arg(long, default_value = "Please help me set this up")]
    pub description: String,
    /// Book a slot starting then (RFC 3339) instead of now.
    #[arg(long)]
    pub slot_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Slot length in hours (1–12).
    #[arg(long, default_value_t = 1, value_parser = count::<u32>(1, MAX_SLOT_HOURS))]
    pub slot_hours: u32,
    /// Remote help (phone, video) instead of on site.
    #[arg(long)]
    pub remote: bool,
    /// Brand community (only its Friends see the job).
    #[arg(long)]
    pub brand: Option<String>,
    /// Access notes (door code, floor).
    #[arg(long)]
    pub access_notes: Option<String>,
}

const PUSH_TOKEN_HELP: &str = "\
The token is never printed back: output names it by a tag (8 hex digits of its SHA-256).
A new token replaces the one registered before; the same token again sends nothing.

Examples:
  friendctl friend --token dev-friend-anna push-token --platform fcm 'fcm-registration-token'
  friendctl customer --token dev-customer-heidi push-token --platform apns-sandbox 0a1b…(64 hex)
  friendctl friend --token dev-friend-anna push-token --remove";

/// `push-token`: register this device's push token, or remove it, for a Friend and a customer
/// alike.
#[derive(Debug, Args)]
pub struct PushTokenArgs {
    /// Where the token is delivered through.
    #[arg(long, value_enum, required_unless_present = "remove")]
    pub platform: Option<PushPlatformArg>,
    /// The device token the platform issued (FCM registration token, APNs device token in hex).
    // Not named `token`: that id is the global `--token`, the account's bearer token.
    #[arg(
        value_name = "TOKEN",
        required_unless_present = "remove",
        conflicts_with = "remove"
    )]
    pub device_token: Option<String>,
    /// Remove the token this device registered instead (at sign-out).
    #[arg(long, conflicts_with = "platform")]
    pub remove: bool,
}

/// A push platform on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PushPlatformArg {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// APNs, production.
    Apns,
    /// APNs sandbox (development builds).
    ApnsSandbox,
}

impl From<PushPlatformArg> for friend_protocol::push::PushPlatform {
    fn from(p: PushPlatformArg) -> Self {
        use friend_protocol::push::PushPlatform;
        match p {
            PushPlatformArg::Fcm => PushPlatform::Fcm,
            PushPlatformArg::Apns => PushPlatform::Apns,
            PushPlatformArg::ApnsSandbox => PushPlatform::ApnsSandbox,
        }
    }
}

/// A quote to propose (the Friend's `propose`, the customer's `counter`).
#[derive(Debug, Args)]
pub struct QuoteDraft {
    /// The job id.
    #[arg(value_parser = parse_job)]
    pub job: JobId,
    /// A line item, KIND:QUANTITY:UNIT_PRICE:TEXT (repeat for more).
    #[arg(long = "item", required = true, value_parser = parse_item)]
    pub items: Vec<LineItem>,
    /// Why the price deviates from the orientation price (needed beyond 20 % above it).
    #[arg(long)]
    pub reason: Option<String>,
}

/// Which proposal `accept-quote` and `reject-quote` answer, for a Friend and a customer alike.
#[derive(Debug, Args)]
pub struct QuoteAnswer {
    /// The job id.
    #[arg(value_parser = parse_job)]
    pub job: JobId,
    /// The proposal's version (default: the pending one).
    #[arg(long)]
    pub version: Option<u32>,
}

/// Why a Friend declines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeclineArg {
    /// Too far away right now.
    TooFar,
    /// No time.
    NoTime,
    /// Outside the Friend's skills.
    NotMySkill,
    /// Anything else.
    Other,
}

impl From<DeclineArg> for DeclineReason {
    fn from(a: DeclineArg) -> DeclineReason {
        match a {
            DeclineArg::TooFar => DeclineReason::TooFar,
            DeclineArg::NoTime => DeclineReason::NoTime,
            DeclineArg::NotMySkill => DeclineReason::NotMySkill,
            DeclineArg::Other => DeclineReason::Other,
        }
    }
}

/// Why a Friend gives a job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReleaseArg {
    /// The customer could not be reached to fix the visit.
    CustomerUnreachable,
    /// No time the customer wants works for you.
    NoMatchingTime,
    /// You cannot come after all (illness, emergency).
    CannotCome,
    /// Something else.
    Other,
}

impl From<ReleaseArg> for ReleaseReason {
    fn from(a: ReleaseArg) -> ReleaseReason {
        match a {
            ReleaseArg::CustomerUnreachable => ReleaseReason::CustomerUnreachable,
            ReleaseArg::NoMatchingTime => ReleaseReason::NoMatchingTime,
            ReleaseArg::CannotCome => ReleaseReason::CannotCome,
            ReleaseArg::Other => ReleaseReason::Other,
        }
    }
}

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaymentArg {
    /// Through the platform.
    Online,
    /// In cash to the Friend.
    Cash,
}

impl From<PaymentArg> for PaymentMethod {
    fn from(a: PaymentArg) -> PaymentMethod {
        match a {
            PaymentArg::Online => PaymentMethod::Online,
            PaymentArg::Cash => PaymentMethod::Cash,
        }
    }
}

/// Why a Friend checks out without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnsuccessfulArg {
    /// Nobody there after waiting and calling.
    CustomerAbsent,
    /// The Friend cannot help with this.
    CannotHelp,
    /// Anything else (a note is required).
    Other,
}

impl From<UnsuccessfulArg> for UnsuccessfulReason {
    fn from(a: UnsuccessfulArg) -> UnsuccessfulReason {
        match a {
            UnsuccessfulArg::CustomerAbsent => UnsuccessfulReason::CustomerAbsent,
            UnsuccessfulArg::CannotHelp => UnsuccessfulReason::CannotHelp,
            UnsuccessfulArg::Other => UnsuccessfulReason::Other,
        }
    }
}

/// Parses `LAT,LON`.
pub fn parse_point(s: &str) -> Result<GeoPoint, String> {
    let (lat, lon) = s
        .split_once(',')
        .ok_or_else(|| format!("expected LAT,LON, got {s:?}"))?;
    let lat: f64 = lat
        .trim()
        .parse()
        .map_err(|e| format!("latitude {lat:?}: {e}"))?;
    let lon: f64 = lon
        .trim()
        .parse()
        .map_err(|e| format!("longitude {lon:?}: {e}"))?;
    GeoPoint::new(lat, lon).map_err(|e| e.to_string())
}

/// Parses a job id (a UUID).
pub fn parse_job(s: &str) -> Result<JobId, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("not a job id ({e}): {s:?}"))
}

/// Parses an amount in francs ("89", "89.5", "-12.50") into Rappen: ASCII digits, at most two
/// after the point, and one optional leading `-` (a discount's unit price; whether the sign suits
/// the item's kind is the quote rules' call, `friend_protocol::quote::validate_quote`). Nothing
/// else: no `+`, no second sign.
pub fn parse_chf(s: &str) -> Result<Money, String> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ascii_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !ascii_digits(whole) || frac.len() > 2 || !ascii_digits(frac) {
        return Err(format!("not an amount in francs: {s:?}"));
    }
    let whole: i64 = whole
        .parse()
        .map_err(|_| format!("amount too large: {s:?}"))?;
    let frac: i64 = format!("{frac:0<2}")
        .parse()
        .map_err(|_| format!("not an amount in francs: {s:?}"))?;
    let minor = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| format!("amount too large: {s:?}"))?;
    Ok(Money::chf(if negative { -minor } else { minor }))
}

/// Parses a line item `KIND:QUANTITY:UNIT_PRICE:TEXT` (the text may contain colons).
pub fn parse_item(s: &str) -> Result<LineItem, String> {
    let mut parts = s.splitn(4, ':');
    let (Some(kind), Some(quantity), Some(price), Some(text)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("expected KIND:QUANTITY:UNIT_PRICE:TEXT, got {s:?}"));
    };
    let kind = LineItemKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind.trim())
        .ok_or_else(|| {
            let known: Vec<_> = LineItemKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown item kind {kind:?} (one of {})", known.join(", "))
        })?;
    let quantity: u32 = quantity
        .trim()
        .parse()
        .map_err(|e| format!("quantity {quantity:?}: {e}"))?;
    Ok(LineItem {
        kind,
        description: text.trim().to_owned(),
        quantity,
        unit_price: parse_chf(price)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_visit_commands_parse_their_two_forms() {
        let job = "0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b";
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["friendctl", "friend", "--token", "t"]
                    .iter()
                    .chain(args.iter()),
            )
        };
        let Command::Friend(f) = parse(&["appointment", job, "--in-minutes", "20"])
            .unwrap()
            .command
        else {
            panic!("a friend command")
        };
        assert!(matches!(
            f.command,
            FriendCommand::Appointment {
                in_minutes: Some(20),
                window: 30,
                start: None,
                ..
            }
        ));
        let ok = parse(&[
            "appointment",
            job,
            "--start",
            "2030-05-01T14:00:00Z",
            "--end",
            "2030-05-01T15:00:00Z",
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            &["appointment", job][..],
            &["appointment", job, "--start", "2030-05-01T14:00:00Z"],
            &[
                "appointment",
                job,
                "--in-minutes",
                "5",
                "--start",
                "2030-05-01T14:00:00Z",
                "--end",
                "2030-05-01T15:00:00Z",
            ],
            &["on-my-way", job],
            &["on-my-way", job, "--eta-minutes", "5", "--from", "47.3,8.5"],
            &["release", job],
            &["release", job, "--reason", "bored"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&["on-my-way", job, "--from", "47.3,8.5"]).is_ok());
        assert!(parse(&["release", job, "--reason", "cannot-come", "--note", "fever"]).is_ok());
        let customer = |args: &[&str]| {
            Cli::try_parse_from(
                ["friendctl", "customer", "--token", "t"]
                    .iter()
                    .chain(args.iter()),
            )
        };
        assert!(customer(&["cancel", job, "--preview"]).is_ok());
        assert!(customer(&["decline-visit", job]).is_ok());
    }

    #[test]
    fn items_and_amounts_parse() {
        let item = parse_item("material:2:12.5:LAN cable: 5 m").unwrap();
        assert_eq!(item.kind, LineItemKind::Material);
        assert_eq!(item.quantity, 2);
        assert_eq!(item.unit_price, Money::chf(1250));
        assert_eq!(item.description, "LAN cable: 5 m");
        assert_eq!(parse_chf("-5").unwrap(), Money::chf(-500));
        assert_eq!(parse_chf("89.05").unwrap(), Money::chf(8905));
        assert!(parse_chf("1.234").is_err());
        assert_eq!(parse_chf("0.5").unwrap(), Money::chf(50));
        assert!(parse_chf("99999999999999999999").is_err());
    }

    /// Only digits after one optional '-': "--12.50" used to parse as +11.50 (the whole part
    /// "-12" parsed as a number, then negated again) and "+5" as 5.
    #[test]
    fn an_amount_has_at_most_one_minus_and_no_plus() {
        for bad in [
            "--12.50", "--12", "-+5", "+5", "+5.00", "+-5", "- 5", "5-", "1_000", "1e3", "−5",
        ] {
            let e = parse_chf(bad).expect_err(bad);
            assert!(e.contains("not an amount in francs"), "{bad}: {e}");
        }
        let e = parse_item("discount:1:--12.50:x").expect_err("a double minus");
        assert!(e.contains("not an amount in francs"), "{e}");
        let discount = parse_item("discount:1:-12.50:loyal customer").unwrap();
        assert_eq!(discount.unit_price, Money::chf(-1250));
        assert!(parse_item("gift:1:1:x").is_err());
        assert!(parse_point("47.37,8.54").is_ok());
        assert!(parse_point("95,8").is_err());
    }
}
