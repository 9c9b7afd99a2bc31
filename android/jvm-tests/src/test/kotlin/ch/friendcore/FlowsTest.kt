// Tests of the thin Flow layer (android/src/main/kotlin/ch/friendcore/Flows.kt) on the host JVM.
package ch.friendcore

import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class FlowsTest {
    @Test
    fun `inboxUpdates emits the inbox at once and again after a change`(): Unit = runBlocking {
        TestBackend().use { backend ->
            val customer = backend.createCustomer("Heidi")
            val anna = backend.createFriend("Anna", Places.ZURICH)
            val dir = tempDir()
            openFriend(backend, anna, dir.resolve("anna.db")).use { friend ->
                val session = friend.session()
                val updates = Channel<Inbox>(Channel.UNLIMITED)
                val collector = launch { friend.inboxUpdates(Places.ZURICH, 10.0).collect { updates.send(it) } }
                assertEquals(0, withTimeout(5_000) { updates.receive() }.items.size)

                val job = backend.book(customer, Places.OERLIKON)
                session.syncOnce()
                assertEquals(listOf(job), withTimeout(5_000) { updates.receive() }.items.map { it.offer.id })

                // Unconfined and undispatched, the collector has subscribed by the time launch
                // returns (no pause to wait for it), so the accept's change cannot slip past it.
                val changedJob = launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                    assertEquals(job, session.jobChanges().first())
                }
                val status = session.syncStatusUpdates().first()
                assertTrue(status.connected, "$status")
                friend.accept(job)
                withTimeout(5_000) { changedJob.join() }
                collector.cancelAndJoin()
            }
            dir.toFile().deleteRecursively()
        }
    }
}
