// The thin idiomatic layer over the generated bindings (Generated/FriendCore.swift): AsyncSequences
// instead of listener objects and subscription handles — the inbox on FriendSession, job and status
// changes on the Session both roles share. Ending the iteration (or cancelling the task that
// iterates) cancels the subscription.
import Foundation

extension FriendSession {
    /// Yields each time the cached inbox changed, for as long as it is iterated. Buffers only the
    /// newest signal: a slow consumer sees one signal for a burst of changes.
    public func inboxChanges() -> AsyncStream<Void> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let subscription = self.subscribeInbox(listener: InboxSignal { continuation.yield(()) })
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }

    /// The inbox near `position`: read once at once, and again after every change.
    public func inboxUpdates(
        near position: GeoPoint,
        radiusKm: Double,
        filter: InboxFilter = InboxFilter()
    ) -> AsyncThrowingStream<Inbox, Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            // Subscribe before the first read, so a change in between is not missed.
            let changes = self.inboxChanges()
            let task = Task {
                do {
                    continuation.yield(try await self.inbox(position: position, radiusKm: radiusKm, filter: filter))
                    for await _ in changes {
                        continuation.yield(try await self.inbox(position: position, radiusKm: radiusKm, filter: filter))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension Session {
    /// Ids of the account's jobs that changed, for as long as it is iterated; for either role
    /// (`friend.session().jobChanges()`). Ends at once when the role object is already released.
    public func jobChanges() -> AsyncStream<String> {
        AsyncStream(bufferingPolicy: .bufferingNewest(256)) { continuation in
            guard let subscription = try? self.subscribeJobs(listener: JobSignal { continuation.yield($0) }) else {
                continuation.finish()
                return
            }
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }

    /// The sync status now and after every change, newest only; for either role. Ends at once when
    /// the role object is already released.
    public func syncStatusUpdates() -> AsyncStream<SyncStatus> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            guard let status = try? self.syncStatus() else {
                continuation.finish()
                return
            }
            continuation.yield(status)
            guard let subscription = try? self.subscribeSyncStatus(listener: StatusSignal { continuation.yield($0) }) else {
                continuation.finish()
                return
            }
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }
}

private final class InboxSignal: InboxListener, @unchecked Sendable {
    private let onChange: @Sendable () -> Void
    init(_ onChange: @escaping @Sendable () -> Void) { self.onChange = onChange }
    func onInboxChanged() { onChange() }
}

private final class JobSignal: JobListener, @unchecked Sendable {
    private let onChange: @Sendable (String) -> Void
    init(_ onChange: @escaping @Sendable (String) -> Void) { self.onChange = onChange }
    func onJobChanged(jobId: String) { onChange(jobId) }
}

private final class StatusSignal: SyncStatusListener, @unchecked Sendable {
    private let onChange: @Sendable (SyncStatus) -> Void
    init(_ onChange: @escaping @Sendable (SyncStatus) -> Void) { self.onChange = onChange }
    func onSyncStatus(status: SyncStatus) { onChange(status) }
}
