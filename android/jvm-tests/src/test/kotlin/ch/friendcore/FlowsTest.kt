// Tests of the thin Flow layer (android/src/main/kotlin/ch/friendcore/Flows.kt) on the host JVM.
package ch.friendcore

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
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

    @Test
    fun `jobChanges drops no id when a sync changes more jobs than the collector has taken`(): Unit =
        runBlocking {
            TestBackend().use { backend ->
                val heidi = backend.createCustomer("Heidi")
                val first = backend.book(heidi, Places.OERLIKON)
                val dir = tempDir()
                openCustomer(backend, heidi, dir.resolve("heidi.db")).use { customer ->
                    val session = customer.session()
                    val received = Channel<String>(Channel.UNLIMITED)
                    val gate = CompletableDeferred<Unit>()
                    // Takes one id, then waits for the gate: what arrives meanwhile stays in the
                    // flow's own buffer, the one under test.
                    val collector = launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                        session.jobChanges().collect { id ->
                            received.send(id)
                            gate.await()
                        }
                    }
                    // The snapshot announces the one job: the listener is registered.
                    session.syncOnce()
                    assertEquals(first, withTimeout(5_000) { received.receive() })

                    // One delta page (the core asks for up to 500 changes) changes 300 jobs: 300
                    // callbacks in a row while the collector is held.
                    val booked = List(300) { backend.book(heidi, Places.OERLIKON) }.toSet()
                    session.syncOnce()
                    gate.complete(Unit)
                    val ids = mutableSetOf<String>()
                    withTimeoutOrNull(10_000) { while (ids.size < booked.size) ids.add(received.receive()) }
                    assertEquals(booked.size, ids.size, "ids delivered of ${booked.size}")
                    assertEquals(booked, ids)
                    collector.cancelAndJoin()
                }
                dir.toFile().deleteRecursively()
            }
        }
}
