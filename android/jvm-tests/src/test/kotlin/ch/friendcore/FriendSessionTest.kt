// Tests of the Kotlin glue, not of the business logic (the Rust suites cover that): sessions open,
// suspend functions work and can be cancelled, records and enums arrive intact, listeners fire and
// stop, errors are typed exceptions with stable codes, and the cache answers with the backend gone.
package ch.friendcore

import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Test
import java.util.concurrent.TimeUnit

class FriendSessionTest : BackendTest() {
    @Test
    fun `a session opens, syncs and lists offers near a point without personal data`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val job = backend.book(customer, Places.OERLIKON)

        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()
            val report = session.syncOnce()
            assertTrue(report.changes >= 1uL, "$report")

            val inbox = friend.inbox(Places.ZURICH, 10.0, InboxFilter())
            val item = inbox.items.single()
            assertEquals(job, item.offer.id)
            assertEquals(Category.NETWORK, item.offer.category)
            assertEquals(Place.ON_SITE, item.offer.place)
            assertEquals(Timing.Now, item.offer.timing)
            assertEquals(Currency.CHF, item.offer.orientationPrice.currency)
            assertTrue(item.distanceM!! in 1_000.0..10_000.0, "${item.distanceM}")
            assertTrue(item.expiresInSecs > 0)
            assertEquals("8004 Zürich", item.offer.district)
            assertNotNull(inbox.cacheAgeSecs)
            assertFalse(item.offer.toString().contains("Geheimweg"), "no address before accept")

            // Filters and radius pass through.
            assertTrue(friend.inbox(Places.BERN, 10.0, InboxFilter()).items.isEmpty())
            val tvOnly = InboxFilter(categories = listOf(Category.TV))
            assertTrue(friend.inbox(Places.ZURICH, 10.0, tvOnly).items.isEmpty())

            val me = session.profile()
            assertTrue(me is Me.Friend && me.profile.name == "Anna" && me.profile.id == anna.id, "$me")
            assertTrue(session.catalog().services.any { it.id == "network.router_setup" })
            assertTrue(session.syncStatus().connected)
            assertTrue(libraryVersion().isNotEmpty())
        }
    }

    @Test
    fun `the first accept wins with full details and the second device loses`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val ben = backend.createFriend("Ben", Places.ZURICH)
        val job = backend.book(customer, Places.OERLIKON)
        val annaSession = openFriend(backend, anna, dir.resolve("anna.db"))
        val benSession = openFriend(backend, ben, dir.resolve("ben.db"))
        try {
            annaSession.session().syncOnce()
            benSession.session().syncOnce()
            assertNotNull(benSession.offer(job))

            val won = annaSession.accept(job)
            assertTrue(won is AcceptResult.Won, "$won")
            val details = (won as AcceptResult.Won).job
            assertEquals(JobState.ASSIGNED, details.state)
            assertEquals("Geheimweg 42", details.address?.street)
            assertEquals("Hildegard Vertraulich", details.contact.name)
            assertEquals(anna.id, details.friend?.id)

            assertEquals(AcceptResult.Lost, benSession.accept(job))
            assertNull(benSession.offer(job), "the loser's inbox drops the job at once")
            assertTrue(benSession.myJobs().isEmpty())

            val mine = annaSession.myJobs().single()
            assertEquals(job, mine.details.id)
            assertEquals(job, annaSession.job(job).details.id)
            assertEquals(anna.id, backend.holder(customer, job))
        } finally {
            annaSession.close()
            benSession.close()
        }
    }

    @Test
    fun `listeners fire after changes and stop after cancel`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()
            session.syncOnce()
            val inbox = CountingInboxListener()
            val jobs = CollectingJobListener()
            val statuses = CollectingStatusListener()
            val inboxSub = friend.subscribeInbox(inbox)
            val jobSub = session.subscribeJobs(jobs)
            val statusSub = session.subscribeSyncStatus(statuses)

            val job = backend.book(customer, Places.OERLIKON)
            session.syncOnce()
            assertNotNull(inbox.calls.poll(5, TimeUnit.SECONDS), "inbox listener called")
            // Any callback may come first (FriendCore's own threads report as they go): wait for
            // the one the sync must produce rather than asserting on the first.
            val status = statuses.statuses.awaitMatching { it.connected && it.lastSuccess != null }
            assertNotNull(status, "a status callback after the sync says connected and synced")

            assertTrue(friend.accept(job) is AcceptResult.Won)
            assertNotNull(jobs.jobs.awaitMatching { it == job }, "job listener called with the id")

            assertTrue(inboxSub.isActive())
            inboxSub.cancel()
            inboxSub.cancel() // twice is fine
            assertFalse(inboxSub.isActive())
            jobSub.close() // closing the handle cancels too
            statusSub.cancel()
            inbox.calls.clear(); jobs.jobs.clear(); statuses.statuses.clear()

            backend.book(customer, Places.OERLIKON)
            session.syncOnce()
            friend.checkIn(job)
            assertNull(inbox.calls.poll(300, TimeUnit.MILLISECONDS), "no inbox callback after cancel")
            assertTrue(jobs.jobs.isEmpty(), "no job callback after close")
            assertTrue(statuses.statuses.isEmpty(), "no status callback after cancel")
        }
    }

    @Test
    fun `a throwing listener does not break the session`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val sub = friend.subscribeInbox(object : InboxListener {
                override fun onInboxChanged() = throw IllegalStateException("app bug")
            })
            backend.book(customer, Places.OERLIKON)
            friend.session().syncOnce()
            assertEquals(1, friend.inbox(Places.ZURICH, 10.0, InboxFilter()).items.size)
            sub.close()
        }
    }

    @Test
    fun `errors arrive as typed exceptions with stable codes`(): Unit = runBlocking {
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val db = dir.resolve("anna.db")
        openFriend(backend, anna, db).close()

        val wrongKey = failure { openFriend(backend, anna, db, key = ByteArray(32) { 9 }) }
        assertTrue(wrongKey is FriendCoreException.WrongKey, "$wrongKey")
        assertEquals("wrong_key", wrongKey.code())

        val shortKey = failure { openFriend(backend, anna, dir.resolve("short.db"), key = ByteArray(5)) }
        assertEquals("invalid_input", shortKey.code(), shortKey.describe())

        val plainHttp = failure {
            FriendSession.open(
                SessionConfig(dbPath = dir.resolve("x.db").toString(), baseUrl = "http://api.example.ch"),
                TestSecrets(anna.token),
            )
        }
        assertTrue(plainHttp is FriendCoreException.InvalidUrl, "$plainHttp")
        assertEquals("invalid_url", plainHttp.code())

        val throwingKeystore = object : SecretsProvider {
            override fun accessToken(): String = throw IllegalStateException("keystore locked")
            override fun dataKey(): ByteArray = throw IllegalStateException("keystore locked")
        }
        val locked = failure {
            FriendSession.open(SessionConfig(dbPath = db.toString(), baseUrl = backend.baseUrl), throwingKeystore)
        }
        assertEquals("secrets_unavailable", locked.code(), locked.describe())

        openFriend(backend, Account(anna.id, "not-a-token"), dir.resolve("bad.db")).use { friend ->
            val session = friend.session()
            val unauthorized = failure { session.syncOnce() }
            assertTrue(unauthorized is FriendCoreException.Unauthorized, "$unauthorized")
            assertEquals("unauthorized", unauthorized.code())
            assertEquals("unauthorized", session.syncStatus().lastError?.code)
        }

        // A customer's token in a Friend session: unauthorized, naming the account's role.
        val heidi = backend.createCustomer("Heidi")
        openFriend(backend, heidi, dir.resolve("heidi-as-friend.db")).use { friend ->
            val wrongRole = failure { friend.session().syncOnce() }
            assertTrue(wrongRole is FriendCoreException.Unauthorized, "$wrongRole")
            assertTrue(wrongRole.describe().contains("customer account"), wrongRole.describe())
        }
        // A malformed token is refused when the session opens, saying what is wrong with it.
        val malformed = failure { openFriend(backend, Account(anna.id, "${anna.token}\n"), dir.resolve("nl.db")) }
        assertEquals("unauthorized", malformed.code(), malformed.describe())
        assertTrue(malformed.describe().contains("line break"), malformed.describe())

        openFriend(backend, anna, db).use { friend ->
            assertEquals("invalid_input", failure { friend.accept("not-a-uuid") }.code())
            assertEquals("invalid_input", failure { friend.inbox(Places.ZURICH, 9_999.0, InboxFilter()) }.code())
            assertEquals("invalid_input", failure { friend.inbox(GeoPoint(91.0, 0.0), 1.0, InboxFilter()) }.code())
            val missing = failure { friend.job("0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b") }
            assertTrue(missing is FriendCoreException.NotFound, "$missing")
            val session = friend.session()
            session.shutdown()
            val closed = failure { session.syncOnce() }
            assertTrue(closed is FriendCoreException.Closed, "$closed")
            assertEquals("session_closed", closed.code())
            assertEquals("session_closed", failure { friend.accept("0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b") }.code())
        }
    }

    @Test
    fun `suspend calls can be cancelled without breaking the session`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()
            session.syncOnce()
            val job = backend.book(customer, Places.OERLIKON)
            session.syncOnce()

            backend.pause() // requests now hang until the 15 s request timeout
            try {
                val started = System.nanoTime()
                try {
                    withTimeout(300) { session.syncOnce() }
                    fail<Unit>("the sync should hang")
                } catch (_: TimeoutCancellationException) {
                }
                val waitedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started)
                assertTrue(waitedMs < 3_000, "cancellation took $waitedMs ms")

                // An accept abandoned midway (its request may or may not reach the server).
                val accepting = launch { friend.accept(job) }
                delay(300)
                accepting.cancelAndJoin()

                // The session still answers from the cache, and a second cancelled call does not wait
                // for a lock the first one held.
                assertEquals(1, friend.inbox(Places.ZURICH, 10.0, InboxFilter()).items.size)
                try {
                    withTimeout(300) { session.syncOnce() }
                } catch (_: TimeoutCancellationException) {
                }
            } finally {
                backend.resume()
            }

            // Once the backend answers again the session syncs, and the abandoned accept resolves to
            // the server's truth: the job is Anna's on the device exactly when it is on the server.
            // No pause for the backlog: whichever reaches the server first, the late accept or the
            // device's lookup of its key, the lookup's answer is final (issue 11, point 2).
            session.syncOnce()
            session.syncOnce()
            val heldByAnna = backend.holder(customer, job) == anna.id
            assertEquals(heldByAnna, friend.myJobs().any { it.details.id == job })
            assertEquals(!heldByAnna, friend.inbox(Places.ZURICH, 10.0, InboxFilter()).items.isNotEmpty())
        }
    }

    @Test
    fun `the cache answers after the backend stops`(): Unit = runBlocking {
        val customer = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val first = backend.book(customer, Places.OERLIKON)
        val second = backend.book(customer, Places.OERLIKON)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()
            session.syncOnce()
            assertTrue(friend.accept(first) is AcceptResult.Won)
            session.catalog()
            session.profile()
            backend.stop()

            val offline = failure { session.syncOnce() }
            assertTrue(offline is FriendCoreException.Offline, "$offline")
            assertEquals("offline", offline.code())
            assertFalse(session.syncStatus().connected)
            assertEquals("offline", session.syncStatus().lastError?.code)

            val inbox = friend.inbox(Places.ZURICH, 10.0, InboxFilter())
            assertEquals(listOf(second), inbox.items.map { it.offer.id })
            assertNotNull(inbox.cacheAgeSecs)
            assertEquals("Geheimweg 42", friend.job(first).details.address?.street)
            assertTrue(session.catalog().services.isNotEmpty(), "cached catalog")
            assertTrue(session.profile() is Me.Friend, "cached profile")

            assertEquals(AcceptResult.Offline, friend.accept(second), "an accept is never queued")

            friend.checkIn(first) // queued offline, shown at once
            val job = friend.job(first)
            assertEquals(JobState.ON_SITE, job.details.state)
            assertEquals(listOf("check_in"), job.pendingActions)
            val item = session.outbox().single()
            assertEquals("check_in", item.kind)
            assertEquals(OutboxStatus.PENDING, item.status)
            assertEquals(1u, session.syncStatus().pendingOutbox)
        }
    }

    @Test
    fun `the logger bridge forwards FriendCore events`(): Unit = runBlocking {
        val records = java.util.concurrent.LinkedBlockingQueue<LogRecord>()
        initLogging(LogLevel.DEBUG, object : Logger {
            override fun log(record: LogRecord) {
                records.put(record)
            }
        })
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { it.session().syncOnce() }
        val all = generateSequence { records.poll(2, TimeUnit.SECONDS) }.take(500).toList()
        assertTrue(all.any { it.level == LogLevel.INFO && it.message.contains("friend session opened") }, "$all")
        assertTrue(all.any { it.message.contains("call=\"Session.sync_once\"") || it.message.contains("call=Session.sync_once") }, "$all")
        assertTrue(all.any { it.message.contains("call=\"FriendSession.open\"") || it.message.contains("call=FriendSession.open") }, "$all")
        assertTrue(all.any { it.level == LogLevel.INFO && it.message.contains("friend session closed") }, "$all")
        assertFalse(all.any { it.message.contains(anna.token) }, "no token in logs")
        initLogging(LogLevel.ERROR, object : Logger {
            override fun log(record: LogRecord) {}
        })
    }
}
