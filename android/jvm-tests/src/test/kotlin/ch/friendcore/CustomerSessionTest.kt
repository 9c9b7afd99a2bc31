// Tests of the Kotlin glue of CustomerSession and the Friend's negotiation calls, not of the
// business logic (the Rust suites cover that): a booking made through the customer session reaches
// the server, records and sealed classes arrive intact, consent payloads pass between the two
// sessions as strings, and a tampered payload is a typed error with a stable code.
package ch.friendcore

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class CustomerSessionTest : BackendTest() {
    @Test
    fun `a booking, a quote round trip by payloads, completion and rating`(): Unit = heidiAndAnna {
        // Book through the session: a local id first, the server's id after a sync.
        val local = customer.book(routerBooking())
        assertEquals(local, customer.book(routerBooking()), "the same booking again is not booked twice")
        customer.session().syncOnce()
        val job = customer.booking(local)
        assertNotNull(job, "the server has the booking")
        job!!
        assertEquals(job, customer.myJobs().single().id, "booked once")
        assertEquals(LiveStatus.Searching, customer.job(job).status)
        val me = customer.session().profile()
        assertTrue(me is Me.Customer, "$me")
        val service = customer.session().catalog().services.single { it.id == "network.router_setup" }

        // The Friend accepts and checks in.
        friend.session().syncOnce()
        assertTrue(friend.accept(job) is AcceptResult.Won)
        friend.checkIn(job)
        friend.session().syncOnce()
        customer.session().syncOnce()
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
        assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), friend.session().negotiation(job).status)
        friend.session().syncOnce()
        val pending = friend.session().negotiation(job)
        assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), pending.status)
        assertEquals(0u, pending.unsentSteps, "the sync delivered the proposal: $pending")

        // A tampered payload is refused with a stable code, and nothing is stored.
        val middle = proposal.length / 2
        val flipped = if (proposal[middle] == 'A') 'B' else 'A'
        val tampered = proposal.substring(0, middle) + flipped + proposal.substring(middle + 1)
        val refused = failure { customer.session().importConsent(job, tampered) }
        assertTrue(refused is FriendCoreException.InvalidConsent, "$refused")
        assertEquals("invalid_consent", refused.code(), refused.describe())
        assertNull(customer.session().negotiation(job).latest)

        // The customer imports the proposal, accepts it and hands the acceptance back.
        val imported = customer.session().importConsent(job, proposal)
        assertEquals(NegotiationStatus.Pending(1u, Party.FRIEND), imported.status)
        assertEquals(items, imported.latest?.quote?.items)
        assertEquals(LiveStatus.QuotePending(Party.FRIEND), customer.job(job).status)
        val acceptance = customer.session().acceptQuote(job, 1u)
        val agreed = friend.session().importConsent(job, acceptance)
        assertEquals(NegotiationStatus.Agreed(1u, service.orientationPrice), agreed.status)
        assertEquals(Answer.ACCEPTED, agreed.agreed?.answer)
        assertEquals(Party.FRIEND, agreed.agreed?.proposedBy)

        // Completion in cash, then the customer rates.
        val settlement = friend.complete(job, PaymentMethod.CASH)
        assertEquals(preview, settlement)
        friend.session().syncOnce()
        val friendOutbox = friend.session().outbox()
        assertTrue(friendOutbox.none { it.status == OutboxStatus.REFUSED }, "$friendOutbox")
        customer.session().syncOnce()
        assertEquals(LiveStatus.Completed, customer.job(job).status)
        val rating = customer.rate(job, 5u, "Quick and friendly")
        customer.session().syncOnce()
        val customerOutbox = customer.session().outbox()
        val rated = customerOutbox.single { it.id == rating }
        assertEquals("rate", rated.kind)
        assertEquals(OutboxStatus.APPLIED, rated.status, "$rated")
        assertTrue(customerOutbox.none { it.status == OutboxStatus.REFUSED }, "$customerOutbox")
        assertNotEquals(local, job)
    }

    @Test
    fun `customer errors are typed with stable codes`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        openCustomer(backend, heidi, dir.resolve("heidi.db")).use { customer ->
            val noService = failure { customer.book(routerBooking().copy(serviceId = "")) }
            assertEquals("invalid_input", noService.code(), noService.describe())
            assertEquals("invalid_input", failure { customer.booking("not-a-uuid") }.code())
            val unknown = "00000000-0000-4000-8000-000000000000"
            assertEquals("not_found", failure { customer.job(unknown) }.code())
            assertNull(customer.booking(unknown))
            customer.session().shutdown()
            assertEquals("session_closed", failure { customer.session().syncOnce() }.code())
        }
    }
}
