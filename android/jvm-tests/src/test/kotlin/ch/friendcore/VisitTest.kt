// Tests of the Kotlin glue of the steps between the accept and the arrival (issue 15), not of the
// rules (the Rust suites cover those): the Friend's setAppointment, onMyWay, onMyWayFrom and
// release with a reason, the customer's cancelPreview and declineAppointment, and the live-status
// variants they lead to (Accepted with the visit, OnTheWay, SearchingAgain), against a real backend.
package ch.friendcore

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.time.Duration
import java.time.Instant
import java.time.temporal.ChronoUnit

class VisitTest : BackendTest() {
    private fun booking(timing: Timing, description: String) = BookRequest(
        serviceId = "network.router_setup",
        description = description,
        timing = timing,
        place = Place.ON_SITE,
        location = Places.OERLIKON,
        address = Address(street = "Geheimweg 42", postalCode = "8050", city = "Zürich"),
        contact = Contact(name = "Hildegard Vertraulich", phone = "+41 79 555 12 34"),
    )

    /**
     * Books through the customer's device and returns the server's job id (a booking is told apart
     * from an earlier one by its [description]: the same booking again is not booked twice).
     */
    private suspend fun book(
        customer: CustomerSession,
        timing: Timing = Timing.Now,
        description: String = "Wi-Fi does not reach the bedroom",
    ): String {
        val local = customer.book(booking(timing, description))
        customer.session().syncOnce()
        return customer.booking(local) ?: error("the backend did not take the booking")
    }

    private suspend fun won(friend: FriendSession, job: String) {
        friend.session().syncOnce()
        val outcome = friend.accept(job)
        assertTrue(outcome is AcceptResult.Won, "$outcome")
    }

    private suspend fun syncBoth(friend: FriendSession, customer: CustomerSession) {
        friend.session().syncOnce()
        customer.session().syncOnce()
    }

    @Test
    fun `the visit and the estimate reach the customer's live status`(): Unit = heidiAndAnna {
        val job = book(customer)
        won(friend, job)
        customer.session().syncOnce()
        assertEquals(LiveStatus.Accepted("Anna", null), customer.job(job).status)

        // The Friend fixes an arrival window; the customer sees it.
        val now = Instant.now().truncatedTo(ChronoUnit.MILLIS)
        val start = now.plus(Duration.ofMinutes(20))
        val end = now.plus(Duration.ofMinutes(50))
        friend.setAppointment(job, start, end)
        assertEquals(start, friend.job(job).details.visit.appointment?.start, "shown at once")
        syncBoth(friend, customer)
        val accepted = customer.job(job).status
        assertEquals(LiveStatus.Accepted("Anna", Appointment(start, end, false)), accepted)

        // On my way, estimated from the device's position (which is not sent).
        val queued = friend.onMyWayFrom(job, Places.ZURICH)
        val minutes = Duration.between(Instant.now(), queued.eta).toMinutes()
        assertTrue(minutes in 11..14, "$minutes min for ~3.7 km")
        assertEquals("on_my_way", friend.session().outbox().single { it.id == queued.outboxId }.kind)
        syncBoth(friend, customer)
        assertEquals(LiveStatus.OnTheWay("Anna", queued.eta), customer.job(job).status)

        // A newer estimate replaces it.
        val sooner = Instant.now().plus(Duration.ofMinutes(5)).truncatedTo(ChronoUnit.MILLIS)
        friend.onMyWay(job, sooner)
        syncBoth(friend, customer)
        assertEquals(LiveStatus.OnTheWay("Anna", sooner), customer.job(job).status)
        assertEquals(sooner, customer.job(job).details?.visit?.enRoute?.eta)

        // Refused before anything is queued, with the usual stable code.
        val past = failure { friend.onMyWay(job, Instant.now().minus(Duration.ofHours(1))) }
        assertEquals("invalid_input", past.code(), past.describe())
        val backwards = failure { friend.setAppointment(job, end, start) }
        assertEquals("invalid_input", backwards.code(), backwards.describe())
        val nowhere = failure { friend.onMyWayFrom(job, GeoPoint(95.0, 8.0)) }
        assertEquals("invalid_input", nowhere.code(), nowhere.describe())
        // Instant.MAX (year 1,000,000,000) is beyond what the core's times hold: typed, no panic.
        val beyond = failure { friend.onMyWay(job, Instant.MAX) }
        assertEquals("invalid_input", beyond.code(), beyond.describe())
        val farSlot = failure { friend.setAppointment(job, Instant.MIN, Instant.MAX) }
        assertEquals("invalid_input", farSlot.code(), farSlot.describe())
        assertTrue(friend.session().outbox().none { it.status == OutboxStatus.REFUSED })
    }

    @Test
    fun `a late cancellation shows its fee first and a release says why`(): Unit = heidiAndAnna {
        val kept = book(customer)
        val released = book(customer, description = "The TV box has no picture")
        assertTrue(kept != released)
        assertEquals(CancelPreview(null, null), customer.cancelPreview(kept), "open: free")
        won(friend, kept)
        won(friend, released)
        customer.session().catalog()

        // Anna gives one back, saying why: the customer sees "looking for another Friend".
        friend.release(released, ReleaseReason.CANNOT_COME, "fever")
        val mine = friend.myJobs()
        assertTrue(mine.none { it.details.id == released && it.details.state == JobState.ASSIGNED }, "$mine")
        syncBoth(friend, customer)
        val again = customer.job(released)
        assertEquals(LiveStatus.SearchingAgain, again.status)
        assertEquals(1u, again.details?.visit?.reopened)

        // A now-job held by a Friend: the fee, computed on the device — the same with the
        // backend frozen.
        val preview = customer.cancelPreview(kept)
        assertEquals(Money(3_900L, Currency.CHF), preview.fee)
        assertNull(preview.freeUntil)
        backend.pause()
        try {
            assertEquals(preview, customer.cancelPreview(kept), "offline")
        } finally {
            backend.resume()
        }

        // The customer cancels anyway: the fee shows on the cancelled job.
        customer.cancel(kept)
        customer.session().syncOnce()
        val cancelled = customer.job(kept)
        assertEquals(LiveStatus.Cancelled, cancelled.status)
        val compensation = cancelled.details?.visit?.compensation
        assertNotNull(compensation)
        assertEquals(CompensationCause.LATE_CANCELLATION, compensation!!.cause)
        assertEquals(3_900L, compensation.settlement.charged.minor)
        assertEquals(
            3_900L,
            compensation.settlement.fee.minor + compensation.settlement.payout.minor,
        )
        val noLonger = failure { customer.cancelPreview(kept) }
        assertEquals("invalid_input", noLonger.code(), noLonger.describe())

        // The default arguments: a release without a reason still compiles and is checked.
        val notHeld = failure { friend.release(released) }
        assertTrue(notHeld.code() == "not_found" || notHeld.code() == "invalid_input", notHeld.describe())
    }

    @Test
    fun `a moved slot visit can be declined and the job is offered again`(): Unit = heidiAndAnna {
        val slotStart = Instant.now().plus(Duration.ofHours(72)).truncatedTo(ChronoUnit.SECONDS)
        val job = book(customer, Timing.Slot(slotStart, slotStart.plus(Duration.ofHours(2))))
        won(friend, job)
        customer.session().syncOnce()
        val early = customer.cancelPreview(job)
        assertNull(early.fee, "72 h ahead: free")
        assertEquals(slotStart.minus(Duration.ofHours(24)), early.freeUntil)
        val notMoved = failure { customer.declineAppointment(job) }
        assertEquals("invalid_input", notMoved.code(), notMoved.describe())

        // Anna moves the visit to tomorrow: the customer may decline it.
        val start = Instant.now().plus(Duration.ofHours(30)).truncatedTo(ChronoUnit.SECONDS)
        friend.setAppointment(job, start, start.plus(Duration.ofHours(1)))
        syncBoth(friend, customer)
        val status = customer.job(job).status
        assertTrue(status is LiveStatus.Accepted && status.visit?.moved == true, "$status")
        assertEquals(start.minus(Duration.ofHours(24)), customer.cancelPreview(job).freeUntil)

        customer.declineAppointment(job)
        assertEquals(LiveStatus.SearchingAgain, customer.job(job).status, "shown at once")
        customer.session().syncOnce()
        val reopened = customer.job(job)
        assertEquals(LiveStatus.SearchingAgain, reopened.status)
        assertEquals(JobState.OPEN, reopened.details?.state)
        assertTrue(customer.session().outbox().none { it.status == OutboxStatus.REFUSED })
    }
}
