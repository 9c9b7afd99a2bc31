// Tests of the Session both roles share, as glue: one type for the Friend's and the customer's
// shared calls (code written once against it serves both), one session per role object, and the
// lifetime rule — the role object owns the account, a Session only refers to it.
package ch.friendcore

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.util.concurrent.TimeUnit

class SessionTest : BackendTest() {
    /**
     * Written once against [Session], whichever role's device runs it: import the payload the other
     * device shows and accept the proposal in it. Returns the acceptance to show back.
     */
    private suspend fun Session.acceptScanned(job: String, payload: String): String {
        val proposal = importConsent(job, payload).latest
        assertNotNull(proposal, "the payload held a proposal")
        return acceptQuote(job, proposal!!.quote.version)
    }

    @Test
    fun `one negotiation step written against Session serves the Friend and the customer`(): Unit = heidiAndAnna {
        val job = backend.book(heidi, Places.OERLIKON)
        friend.session().syncOnce()
        assertTrue(friend.accept(job) is AcceptResult.Won)
        friend.checkIn(job)
        val sessions: List<Session> = listOf(friend.session(), customer.session())
        for (session in sessions) session.syncOnce()
        val price = customer.session().catalog().services.single { it.id == "network.router_setup" }.orientationPrice
        val router = LineItem(LineItemKind.SERVICE, "Router setup", 1u, price)
        val discount = LineItem(LineItemKind.DISCOUNT, "Neighbour discount", 1u, Money(-1400, price.currency))
        val repeater = LineItem(LineItemKind.EXTRA_SERVICE, "Mesh repeater setup", 1u, Money(4900, price.currency))

        // The Friend proposes, the customer counters (each role's own call) ...
        customer.session().importConsent(job, friend.propose(job, listOf(router), null))
        val counter = customer.counter(job, listOf(router, discount), null)
        // ... and the Friend's device accepts the counter through the shared step.
        val agreed = customer.session().importConsent(job, friend.session().acceptScanned(job, counter))
        assertEquals(NegotiationStatus.Agreed(2u, Money(price.minor - 1400, price.currency)), agreed.status)

        // An amendment: the same shared step, now on the customer's device.
        val amendment = friend.propose(job, listOf(router, discount, repeater), "Second floor has no signal")
        friend.session().importConsent(job, customer.session().acceptScanned(job, amendment))
        val total = Money(price.minor - 1400 + 4900, price.currency)
        for (session in sessions) {
            assertEquals(NegotiationStatus.Agreed(3u, total), session.negotiation(job).status)
        }
        assertTrue(sessions[0].profile() is Me.Friend)
        assertTrue(sessions[1].profile() is Me.Customer)
    }

    @Test
    fun `closing the role object closes its session and stops background work`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val db = dir.resolve("anna.db")
        val friend = openFriend(backend, anna, db)
        val session = friend.session()
        session.syncOnce()
        val inbox = CountingInboxListener()
        val subscription = friend.subscribeInbox(inbox)
        session.startForegroundSync()
        val first = backend.book(heidi, Places.OERLIKON)
        assertNotNull(inbox.calls.poll(10, TimeUnit.SECONDS), "the foreground loop brought the booking")
        assertTrue(friend.session().outbox().isEmpty(), "shared calls work while the role object is open")

        // close() aborts the foreground loop before it returns, so a booking made afterwards can
        // never reach this database through it (checked below when the database is reopened).
        friend.close()
        backend.book(heidi, Places.OERLIKON)

        // Every shared call on the Session still held now fails with the core's typed error.
        for (call in listOf<suspend () -> Unit>(
            { session.syncOnce() },
            { session.onPush("") },
            { session.outbox() },
            { session.negotiation(first) },
            { session.catalog() },
            { session.syncStatus() },
            { session.startForegroundSync() },
            { session.subscribeJobs(CollectingJobListener()) },
        )) {
            val closed = failure(call)
            assertTrue(closed is FriendCoreException.Closed, "$closed")
            assertEquals("session_closed", closed.code())
        }
        session.stopForegroundSync() // nothing left to stop: no error
        session.shutdown()
        session.close()
        subscription.close()

        // The account's database was released and holds only what was synced before the close.
        openFriend(backend, anna, db).use { again ->
            assertEquals(listOf(first), again.inbox(Places.ZURICH, 10.0, InboxFilter()).items.map { it.offer.id })
            again.session().syncOnce()
            assertEquals(2, again.inbox(Places.ZURICH, 10.0, InboxFilter()).items.size)
        }
    }

    @Test
    fun `closing a Session handle leaves its role object working`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        openCustomer(backend, heidi, dir.resolve("heidi.db")).use { customer ->
            val statuses = CollectingStatusListener()
            val subscription = customer.session().use { session ->
                session.syncOnce()
                session.subscribeSyncStatus(statuses)
            }
            // The role object, its calls and its session go on; a listener registered through the
            // closed handle belongs to the account (until its Subscription is cancelled).
            val local = customer.book(routerBooking())
            statuses.statuses.clear()
            customer.session().syncOnce()
            assertNotNull(customer.booking(local), "delivered by the sync")
            assertNotNull(statuses.statuses.awaitMatching { it.pendingOutbox == 0u && it.connected })
            subscription.close()
        }
    }
}
