// The thin idiomatic layer over the generated bindings: Flows instead of listener objects and
// subscription handles — the inbox on FriendSession, job and status changes on the Session both
// roles share. Pure Kotlin + kotlinx.coroutines (no Android API), so the host JVM tests in
// android/jvm-tests compile and test this very file.
package ch.friendcore

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate
import kotlinx.coroutines.flow.map

/**
 * Emits each time the cached inbox changed, for as long as it is collected. The listener is
 * registered when collection starts and cancelled when it stops. Conflated: a slow collector sees
 * one signal for a burst of changes.
 */
fun FriendSession.inboxChanges(): Flow<Unit> = inboxSignals(initial = false)

/**
 * The inbox near [position]: read once at once, and again after every change. For a moving device,
 * `locationFlow.flatMapLatest { session.inboxUpdates(it, radiusKm) }`.
 */
fun FriendSession.inboxUpdates(
    position: GeoPoint,
    radiusKm: Double,
    filter: InboxFilter = InboxFilter(),
): Flow<Inbox> = inboxSignals(initial = true).map { inbox(position, radiusKm, filter) }

/** Subscribes first, then (if [initial]) signals once, so no change between the two is missed. */
private fun FriendSession.inboxSignals(initial: Boolean): Flow<Unit> = callbackFlow {
    val subscription = subscribeInbox(object : InboxListener {
        override fun onInboxChanged() {
            trySend(Unit)
        }
    })
    if (initial) trySend(Unit)
    awaitClose { subscription.cancel(); subscription.close() }
}.conflate()

/**
 * Ids of the account's jobs that changed, for as long as it is collected. The buffer is unbounded,
 * so no id is dropped however many arrive before the collector takes them — a snapshot announces
 * every cached job at once, a delta page each job it changed (an id is a short string). For either
 * role: `friend.session().jobChanges()`, `customer.session().jobChanges()`.
 */
fun Session.jobChanges(): Flow<String> = callbackFlow {
    val subscription = subscribeJobs(object : JobListener {
        override fun onJobChanged(jobId: String) {
            // Cannot fail while collected (unbounded); after the collector stopped, nobody wants it.
            trySend(jobId)
        }
    })
    awaitClose { subscription.cancel(); subscription.close() }
}.buffer(Channel.UNLIMITED)

/**
 * The sync status now and after every change, conflated to the latest, for either role. Fails with
 * `FriendCoreException.Closed` when the role object was closed before collection started.
 */
fun Session.syncStatusUpdates(): Flow<SyncStatus> = callbackFlow {
    // Subscribed before the current status is read, so a change in between is not missed.
    val subscription = subscribeSyncStatus(object : SyncStatusListener {
        override fun onSyncStatus(status: SyncStatus) {
            trySend(status)
        }
    })
    trySend(syncStatus())
    awaitClose { subscription.cancel(); subscription.close() }
}.conflate()
