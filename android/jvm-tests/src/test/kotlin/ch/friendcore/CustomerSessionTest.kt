// Tests of the Kotlin glue of CustomerSession and the Friend's negotiation calls, not of the
// business logic (the Rust suites cover that): a booking made through the customer session reaches
// the server, records and sealed classes arrive intact, consent payloads pass between the two
// sessions as strings, and a tampered payload is a typed error with a stable code.
package ch.friendcore

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import java.nio.file.Path

class CustomerSessionTest {
    private lateinit var backend: TestBackend
    private val dir = tempDir()

    @BeforeEach
    fun start() {
        backend = TestBackend()
    }

    @AfterEach
    fun stop() {
        backend.close()
        dir.toFile().deleteRecursively()
    }

    private suspend fun openCustomer(account: Account, db: Path): CustomerSession = CustomerSession.open(
        SessionConfig(dbPath = db.toString(), baseUrl = backend.baseUrl),
        TestSecrets(account.token),
    )

    /** Runs [block] and returns the FriendCoreException it throws. */
    private suspend fun failure(block: suspend () -> Unit): FriendCoreException {
        try {
            block()
        } catch (e: FriendCoreException) {
            return e
        }
        fail<Unit>("expected a FriendCoreException")
        error("unreachable")
    }

    private fun request() = BookRequest(
        serviceId = "network.router_setup",
        description = "Wi-Fi does not reach the bedroom",
        timing = Timing.Now,
        place = Place.ON_SITE,
        location = Places.OERLIKON,
        address = Address(street = "Geheimweg 42", postalCode = "8004", city = "Zürich"),
        contact = Contact(name = "Hildegard Vertraulich", phone = "+41 79 555 12 34"),
    )

    @Test
    fun `a booking, a quote round trip by payloads, completion and rating`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        val customer = openCustomer(heidi, dir.resolve("heidi.db"))
        val friend = openFriend(backend, anna, dir.resolve("anna.db"))
        try {
            // Book through the session: a local id first, the server's id after a sync.
            val local = customer.book(request())
            assertEquals(local, customer.book(request()), "the same booking again is not booked twice")
            customer.syncOnce()
            val job = customer.booking(local)
            assertNotNull(job, "the server has the booking")
            job!!
            assertEquals(job, customer.myJobs().single().id, "booked once")
            assertEquals(LiveStatus.Searching, customer.job(job).status)
            val me = customer.profile()
            assertTrue(me is Me.Customer, "$me")
            val service = customer.catalog().services.single { it.id == "network.router_setup" }

            // The Friend accepts and checks in.
            friend.syncOnce()
            assertTrue(friend.accept(job) is AcceptResult.Won)
            friend.checkIn(job)
            friend.syncOnce()
            customer.syncOnce()
            val onSite = customer.job(job)
            assertEquals(LiveStatus.OnSite, onSite.status, "$onSite")
            assertEquals(anna.id, onSite.details?.friend?.id)

            // The Friend proposes the orientation price; the payload travels as a string.
            val preview = friend.settlementPreview(service.orientationPrice, PaymentMethod.CASH)
            assertEquals(preview.charged.minor, preview.fee.minor + preview.payout.minor)
            val items = listOf(
                LineItem(LineItemKind.SERVICE, "Router setup", 1u, service.orientationPrice),
            )
            val proposal = friend.propose(job, items, null)
            assertTrue(proposal.isNotEmpty())
            // The outbox timer may deliver the proposal at any moment: how many steps are unsent
            // right now is not asserted, only what holds before and after delivery alike, and the
            // final count once a sync has delivered it.
            assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), friend.negotiation(job).status)
            friend.syncOnce()
            val pending = friend.negotiation(job)
            assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), pending.status)
            assertEquals(0u, pending.unsentSteps, "the sync delivered the proposal: $pending")

            // A tampered payload is refused with a stable code, and nothing is stored.
            val middle = proposal.length / 2
            val flipped = if (proposal[middle] == 'A') 'B' else 'A'
            val tampered = proposal.substring(0, middle) + flipped + proposal.substring(middle + 1)
            val refused = failure { customer.importConsent(job, tampered) }
            assertTrue(refused is FriendCoreException.InvalidConsent, "$refused")
            assertEquals("invalid_consent", refused.code(), refused.describe())
            assertNull(customer.negotiation(job).latest)

            // The customer imports the proposal, accepts it and hands the acceptance back.
            val imported = customer.importConsent(job, proposal)
            assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), imported.status)
            assertEquals(items, imported.latest?.quote?.items)
            assertEquals(LiveStatus.QuotePending(Party.FRIEND), customer.job(job).status)
            val acceptance = customer.acceptQuote(job, 1u)
            val agreed = friend.importConsent(job, acceptance)
            assertEquals(NegotiationStatus.Agreed(1u, service.orientationPrice), agreed.status)
            assertEquals(Answer.ACCEPTED, agreed.agreed?.answer)
            assertEquals(Party.FRIEND, agreed.agreed?.proposedBy)

            // Completion in cash, then the customer rates.
            val settlement = friend.complete(job, PaymentMethod.CASH)
            assertEquals(preview, settlement)
            friend.syncOnce()
            assertTrue(friend.outbox().none { it.status == OutboxStatus.REFUSED }, "${friend.outbox()}")
            customer.syncOnce()
            assertEquals(LiveStatus.Completed, customer.job(job).status)
            val rating = customer.rate(job, 5u, "Quick and friendly")
            customer.syncOnce()
            val rated = customer.outbox().single { it.id == rating }
            assertEquals("rate", rated.kind)
            assertEquals(OutboxStatus.APPLIED, rated.status, "$rated")
            assertTrue(customer.outbox().none { it.status == OutboxStatus.REFUSED }, "${customer.outbox()}")
            assertNotEquals(local, job)
        } finally {
            customer.close()
            friend.close()
        }
    }

    @Test
    fun `customer errors are typed with stable codes`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        openCustomer(heidi, dir.resolve("heidi.db")).use { customer ->
            val noService = failure { customer.book(request().copy(serviceId = "")) }
            assertEquals("invalid_input", noService.code(), noService.describe())
            assertEquals("invalid_input", failure { customer.booking("not-a-uuid") }.code())
            val unknown = "00000000-0000-4000-8000-000000000000"
            assertEquals("not_found", failure { customer.job(unknown) }.code())
            assertNull(customer.booking(unknown))
            customer.shutdown()
        }
    }
}
