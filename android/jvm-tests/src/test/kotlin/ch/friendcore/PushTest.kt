// Tests of the push glue (issue 13): the token an app gets from FCM or APNs is registered through
// the shared Session — validated, queued in the outbox and delivered by the core's own timer,
// replaced by a rotated token, removed at sign-out — and onPush takes whatever the push carried
// without failing because of it. The Rust suites cover the rules; these check the calls as an app
// makes them.
package ch.friendcore

import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class PushTest : BackendTest() {
    /**
     * Waits (up to 10 s) until the core's outbox timer has delivered every queued item: woken by the
     * sync-status updates the core sends after each delivery, no polling.
     */
    private suspend fun Session.awaitDrained() {
        withTimeoutOrNull(10_000) { syncStatusUpdates().first { it.pendingOutbox == 0u } }
            ?: error("the outbox did not drain within 10 s: ${outbox()}")
    }

    @Test
    fun `a push token is registered, replaced and removed through the outbox`(): Unit = runBlocking {
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()

            // Checked before anything is queued: a typed error with a stable code.
            val bad = failure { session.registerPushToken(PushPlatform.APNS, "not-hex") }
            assertEquals("invalid_input", bad.code(), bad.describe())
            assertEquals("invalid_input", failure { session.registerPushToken(PushPlatform.UNKNOWN, "t") }.code())
            assertTrue(session.outbox().isEmpty())

            // What FirebaseMessaging.getToken() / onNewToken hands the app: queued, then delivered by
            // the core's timer with no further call.
            assertNotNull(session.registerPushToken(PushPlatform.FCM, "fcm-token-1"))
            session.awaitDrained()
            val first = session.outbox().single()
            assertEquals("push_token", first.kind)
            assertEquals(OutboxStatus.APPLIED, first.status, "$first")
            val shown = session.pushRegistration()
            assertEquals(PushPlatform.FCM, shown?.platform)
            assertEquals(8, shown!!.tag.length)
            assertFalse(session.outbox().toString().contains("fcm-token-1"), "the token is never shown")

            // The same token at the next start sends nothing; a rotated one replaces it.
            assertNull(session.registerPushToken(PushPlatform.FCM, "fcm-token-1"))
            assertNotNull(session.registerPushToken(PushPlatform.FCM, "fcm-token-2"))
            session.awaitDrained()
            assertFalse(session.pushRegistration()!!.tag == shown.tag)

            // Sign-out: removed once, then there is nothing to remove.
            assertNotNull(session.unregisterPushToken())
            assertNull(session.unregisterPushToken())
            session.awaitDrained()
            assertNull(session.pushRegistration())
            val items = session.outbox()
            assertEquals(listOf("push_token", "push_token", "push_token_removal"), items.map { it.kind })
            assertTrue(items.all { it.status == OutboxStatus.APPLIED }, "$items")
            assertEquals(0u, session.syncStatus().refusedOutbox)
        }
    }

    @Test
    fun `onPush syncs with any payload and brings the offer a push names`(): Unit = runBlocking {
        val heidi = backend.createCustomer("Heidi")
        val anna = backend.createFriend("Anna", Places.ZURICH)
        openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
            val session = friend.session()
            session.syncOnce()
            // Garbage from the platform is a plain sync, never an exception.
            for (payload in listOf("", "{", "not json at all", "[1,2]", """{"kind":"party","job_id":7}""")) {
                assertEquals(0uL, session.onPush(payload).changes, payload)
            }

            // The app is in the background; a booking arrives as a push whose data names the job.
            val job = backend.book(heidi, Places.OERLIKON)
            assertTrue(friend.inbox(Places.ZURICH, 10.0, InboxFilter()).items.isEmpty())
            val data = """{"kind":"offer","job_id":"$job","category":"network","distance_km":"4"}"""
            val report = session.onPush(data)
            assertTrue(report.changes >= 1uL, "$report")
            assertEquals(job, friend.inbox(Places.ZURICH, 10.0, InboxFilter()).items.single().offer.id)

            // An APNs userInfo (the data keys at the top level) reads the same way.
            val apns = """{"aps":{"alert":{"title":"New request"}},"kind":"offer","job_id":"$job"}"""
            assertEquals(0uL, session.onPush(apns).changes)
        }
    }
}
