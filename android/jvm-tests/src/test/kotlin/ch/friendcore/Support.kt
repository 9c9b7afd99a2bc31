// Test support: the reference backend as a child process on a free loopback port, its admin and
// customer API over java.net.http, and small helpers for sessions and listeners.
package ch.friendcore

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import java.io.File
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/** Well-known places (lat, lon). */
object Places {
    val ZURICH = GeoPoint(47.3779, 8.5403)
    val OERLIKON = GeoPoint(47.4111, 8.5441)
    val BERN = GeoPoint(46.9480, 7.4474)
}

class Account(val id: String, val token: String)

/**
 * `target/debug/friend-backend` on 127.0.0.1 with a fresh database, no dev accounts and a known
 * admin token. The port comes from binding port 0 and closing the socket; the backend prints the
 * address it listens on, which is awaited before the tests talk to it.
 */
class TestBackend : AutoCloseable {
    private val dir: Path = Files.createTempDirectory("friendcore-backend")
    private val process: Process
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()
    val baseUrl: String

    init {
        val binary = System.getProperty("friendcore.backend")
            ?: error("system property friendcore.backend (path of friend-backend) is not set")
        check(File(binary).canExecute()) { "$binary missing: run bash bindings/generate.sh (or cargo build -p friend-backend)" }
        val port = ServerSocket(0).use { it.localPort }
        process = ProcessBuilder(
            binary, "--addr", "127.0.0.1:$port", "--db", dir.resolve("backend.db").toString(),
            "--admin-token", ADMIN, "--no-dev-seed",
        ).redirectErrorStream(true).start()
        val lines = LinkedBlockingQueue<String>()
        // Drain the output for the whole life of the process, so it never blocks on a full pipe.
        Thread {
            process.inputStream.bufferedReader().forEachLine { lines.put(it) }
            lines.put(EOF)
        }.apply { isDaemon = true }.start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20)
        var address: String? = null
        while (address == null) {
            val line = lines.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS)
                ?: error("the backend did not start within 20 s")
            check(line != EOF) { "the backend exited: ${process.waitFor()}" }
            address = Regex("listening on (http://\\S+)").find(line)?.groupValues?.get(1)
        }
        baseUrl = address
    }

    /** Freezes the process (SIGSTOP): the kernel still accepts connections, nothing answers. */
    fun pause() = signal("STOP")

    /** Thaws a paused process (SIGCONT). */
    fun resume() = signal("CONT")

    private fun signal(name: String) {
        // The shell's builtin kill: no procps package needed.
        val kill = ProcessBuilder("sh", "-c", "kill -$name ${process.pid()}").start()
        check(kill.waitFor() == 0) { "kill -$name failed" }
    }

    /** Stops the backend (the device sees connection refused from now on). */
    fun stop() {
        if (process.isAlive) {
            resume()
            process.destroy()
            if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
        }
    }

    override fun close() {
        stop()
        dir.toFile().deleteRecursively()
    }

    fun createFriend(name: String, home: GeoPoint): Account {
        val categories = """["tv","computer","network","mobile","audio","smart_home"]"""
        val body = """{"name":"$name","home":{"lat":${home.lat},"lon":${home.lon}},""" +
            """"radius_km":30,"categories":$categories,"tier":"friend"}"""
        return account(post("/v1/admin/friends", ADMIN, body))
    }

    fun createCustomer(name: String): Account =
        account(post("/v1/admin/customers", ADMIN, """{"name":"$name"}"""))

    /** Books an on-site router setup at [at] with recognisable personal data; returns the job id. */
    fun book(customer: Account, at: GeoPoint): String {
        val body = """{"service_id":"network.router_setup","description":"Wi-Fi does not reach the bedroom",""" +
            """"timing":{"kind":"now"},"place":"on_site","location":{"lat":${at.lat},"lon":${at.lon}},""" +
            """"address":{"street":"Geheimweg 42","postal_code":"8004","city":"Zürich"},""" +
            """"contact":{"name":"Hildegard Vertraulich","phone":"+41 79 555 12 34"}}"""
        val answer = post("/v1/customer/jobs", customer.token, body, UUID.randomUUID().toString())
        return field(answer, "id")
    }

    /** The id of the Friend holding [job] as the customer sees it, or null. */
    fun holder(customer: Account, job: String): String? {
        val answer = send(HttpRequest.newBuilder(URI("$baseUrl/v1/customer/jobs/$job"))
            .header("Authorization", "Bearer ${customer.token}").GET().build())
        if (answer.contains("\"friend\":null")) return null
        return Regex("\"friend\":\\{\"id\":\"([^\"]+)\"").find(answer)?.groupValues?.get(1)
    }

    private fun post(path: String, token: String, json: String, key: String? = null): String {
        val request = HttpRequest.newBuilder(URI("$baseUrl$path"))
            .header("Authorization", "Bearer $token")
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json))
        if (key != null) request.header("Idempotency-Key", key)
        return send(request.build())
    }

    private fun send(request: HttpRequest): String {
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() == 200) { "${request.uri()}: ${response.statusCode()} ${response.body()}" }
        return response.body()
    }

    private fun account(json: String) = Account(field(json, "id"), field(json, "token"))

    private fun field(json: String, name: String): String =
        Regex("\"$name\":\"([^\"]+)\"").find(json)?.groupValues?.get(1) ?: error("no $name in $json")

    companion object {
        const val ADMIN = "jvm-test-admin"
        private const val EOF = "\u0000eof"
    }
}

/** A fresh backend and a fresh directory for account databases, for each test. */
abstract class BackendTest {
    protected lateinit var backend: TestBackend
    protected val dir: Path = tempDir()

    @BeforeEach
    fun startBackend() {
        backend = TestBackend()
    }

    @AfterEach
    fun stopBackend() {
        backend.close()
        dir.toFile().deleteRecursively()
    }

    /** Runs [block] with Heidi and Anna and their sessions open; closes both however it ends. */
    protected fun heidiAndAnna(block: suspend Parties.() -> Unit): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openCustomer(backend, heidi, dir.resolve("heidi.db")).use { customer ->
            openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
                Parties(heidi, anna, customer, friend).block()
            }
        }
    }
}

/** A customer (Heidi) and a Friend living in Zürich (Anna), each with a session open. */
class Parties(val heidi: Account, val anna: Account, val customer: CustomerSession, val friend: FriendSession)

/** The app's keystore, in memory. */
class TestSecrets(private val token: String, private val key: ByteArray = ByteArray(32) { 7 }) : SecretsProvider {
    override fun accessToken(): String = token
    override fun dataKey(): ByteArray = key
}

/** An on-site router setup in Oerlikon, now, with recognisable personal data (as [TestBackend.book]). */
fun routerBooking() = BookRequest(
    serviceId = "network.router_setup",
    description = "Wi-Fi does not reach the bedroom",
    timing = Timing.Now,
    place = Place.ON_SITE,
    location = Places.OERLIKON,
    address = Address(street = "Geheimweg 42", postalCode = "8004", city = "Zürich"),
    contact = Contact(name = "Hildegard Vertraulich", phone = "+41 79 555 12 34"),
)

/** A fresh directory for account databases. */
fun tempDir(): Path = Files.createTempDirectory("friendcore-device")

suspend fun openFriend(
    backend: TestBackend,
    account: Account,
    db: Path,
    key: ByteArray = ByteArray(32) { 7 },
): FriendSession = FriendSession.open(
    SessionConfig(dbPath = db.toString(), baseUrl = backend.baseUrl),
    TestSecrets(account.token, key),
)

suspend fun openCustomer(backend: TestBackend, account: Account, db: Path): CustomerSession = CustomerSession.open(
    SessionConfig(dbPath = db.toString(), baseUrl = backend.baseUrl),
    TestSecrets(account.token),
)

/** Runs [block] and returns the FriendCoreException it throws (fails the test if it throws none). */
suspend fun failure(block: suspend () -> Unit): FriendCoreException {
    try {
        block()
    } catch (e: FriendCoreException) {
        return e
    }
    throw AssertionError("expected a FriendCoreException")
}

/** Counts inbox callbacks. */
class CountingInboxListener : InboxListener {
    val calls = LinkedBlockingQueue<Unit>()
    override fun onInboxChanged() {
        calls.put(Unit)
    }
}

/** Collects job callbacks. */
class CollectingJobListener : JobListener {
    val jobs = LinkedBlockingQueue<String>()
    override fun onJobChanged(jobId: String) {
        jobs.put(jobId)
    }
}

/** Collects sync-status callbacks. */
class CollectingStatusListener : SyncStatusListener {
    val statuses = LinkedBlockingQueue<SyncStatus>()
    override fun onSyncStatus(status: SyncStatus) {
        statuses.put(status)
    }
}

/** Takes items until one satisfies [matches], for up to [seconds] in all; null if none did. */
fun <T> LinkedBlockingQueue<T>.awaitMatching(seconds: Long = 5, matches: (T) -> Boolean): T? {
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds)
    while (true) {
        val item = poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS) ?: return null
        if (matches(item)) return item
    }
}
