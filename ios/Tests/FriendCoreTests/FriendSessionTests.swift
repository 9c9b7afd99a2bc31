// XCTest mirror of android/jvm-tests (FriendSessionTest.kt): tests of the Swift glue, run on a Mac
// with `swift test` against the macOS slice of the xcframework and a friend-backend these tests
// start (target/debug/friend-backend, or the path in FRIENDCORE_BACKEND).
import Foundation
import XCTest
@testable import FriendCore

final class FriendSessionTests: XCTestCase {
    private var backend: TestBackend!
    private var dir: URL!

    override func setUpWithError() throws {
        backend = try TestBackend()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        backend.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    private func open(_ account: Account, _ name: String, key: Data = Data(repeating: 7, count: 32),
                      requestTimeoutMs: UInt32 = 15000) async throws -> FriendSession {
        try await FriendSession.open(
            config: SessionConfig(dbPath: dir.appendingPathComponent(name).path, baseUrl: backend.baseUrl,
                                  requestTimeoutMs: requestTimeoutMs),
            secrets: TestSecrets(token: account.token, key: key))
    }

    private func code(of call: () async throws -> Void) async -> String? {
        do {
            try await call()
            return nil
        } catch let error as FriendCoreError {
            return error.code()
        } catch {
            return "unexpected \(error)"
        }
    }

    func testASessionOpensSyncsAndListsOffersNearAPoint() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let job = try await backend.book(customer, at: Places.oerlikon)
        let friend = try await open(anna, "anna.db")
        let session = friend.session()

        let report = try await session.syncOnce()
        XCTAssertGreaterThanOrEqual(report.changes, 1)
        let inbox = try await friend.inbox(position: Places.zurich, radiusKm: 10, filter: InboxFilter())
        XCTAssertEqual(inbox.items.map(\.offer.id), [job])
        let item = try XCTUnwrap(inbox.items.first)
        XCTAssertEqual(item.offer.category, .network)
        XCTAssertEqual(item.offer.timing, .now)
        XCTAssertEqual(item.offer.district, "8004 Zürich")
        XCTAssertFalse("\(item.offer)".contains("Geheimweg"), "no address before accept")
        let far = try await friend.inbox(position: Places.bern, radiusKm: 10, filter: InboxFilter())
        XCTAssertTrue(far.items.isEmpty)
        guard case .friend(let profile) = try await session.profile() else { return XCTFail("not a friend") }
        XCTAssertEqual(profile.id, anna.id)
        XCTAssertTrue(try session.syncStatus().connected)
    }

    func testTheFirstAcceptWinsAndTheSecondDeviceLoses() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let ben = try await backend.createFriend("Ben", home: Places.zurich)
        let job = try await backend.book(customer, at: Places.oerlikon)
        let annaSession = try await open(anna, "anna.db")
        let benSession = try await open(ben, "ben.db")
        _ = try await annaSession.session().syncOnce()
        _ = try await benSession.session().syncOnce()

        guard case .won(let details) = try await annaSession.accept(jobId: job) else { return XCTFail("not won") }
        XCTAssertEqual(details.address?.street, "Geheimweg 42")
        XCTAssertEqual(details.state, .assigned)
        let lost = try await benSession.accept(jobId: job)
        XCTAssertEqual(lost, .lost)
        let benOffer = try await benSession.offer(jobId: job)
        XCTAssertNil(benOffer)
        let annaJobs = try await annaSession.myJobs()
        XCTAssertEqual(annaJobs.map(\.details.id), [job])
    }

    func testListenersFireAndStopAfterCancel() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let friend = try await open(anna, "anna.db")
        _ = try await friend.session().syncOnce()
        let changed = expectation(description: "inbox listener called")
        changed.assertForOverFulfill = false
        let listener = InboxCounter { changed.fulfill() }
        let subscription = friend.subscribeInbox(listener: listener)

        _ = try await backend.book(customer, at: Places.oerlikon)
        _ = try await friend.session().syncOnce()
        await fulfillment(of: [changed], timeout: 5)

        subscription.cancel()
        XCTAssertFalse(subscription.isActive())
        let before = listener.count
        _ = try await backend.book(customer, at: Places.oerlikon)
        _ = try await friend.session().syncOnce()
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(listener.count, before, "no callback after cancel")
    }

    func testTheAsyncSequenceYieldsTheInboxAgainAfterAChange() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let friend = try await open(anna, "anna.db")
        var updates = friend.inboxUpdates(near: Places.zurich, radiusKm: 10).makeAsyncIterator()
        let first = try await updates.next()
        XCTAssertEqual(first?.items.count, 0)
        _ = try await backend.book(customer, at: Places.oerlikon)
        _ = try await friend.session().syncOnce()
        let second = try await updates.next()
        XCTAssertEqual(second?.items.count, 1)
    }

    func testErrorsAreTypedWithStableCodes() async throws {
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        _ = try await open(anna, "anna.db")
        let wrongKey = await code { _ = try await self.open(anna, "anna.db", key: Data(repeating: 9, count: 32)) }
        XCTAssertEqual(wrongKey, "wrong_key")
        let plainHttp = await code {
            _ = try await FriendSession.open(
                config: SessionConfig(dbPath: self.dir.appendingPathComponent("x.db").path,
                                      baseUrl: "http://api.example.ch"),
                secrets: TestSecrets(token: anna.token))
        }
        XCTAssertEqual(plainHttp, "invalid_url")
        let friend = try await open(Account(id: anna.id, token: "not-a-token"), "bad.db")
        let session = friend.session()
        do {
            _ = try await session.syncOnce()
            XCTFail("expected unauthorized")
        } catch FriendCoreError.Unauthorized {
        }
        let badId = await code { _ = try await friend.accept(jobId: "not-a-uuid") }
        XCTAssertEqual(badId, "invalid_input")
        session.shutdown()
        let closed = await code { _ = try await session.syncOnce() }
        XCTAssertEqual(closed, "session_closed")
    }

    /// Swift task cancellation does not reach Rust: an abandoned call runs until it ends (here the
    /// request timeout), and the session is fine afterwards.
    func testAnAbandonedCallDoesNotBreakTheSession() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let friend = try await open(anna, "anna.db", requestTimeoutMs: 1000)
        let session = friend.session()
        _ = try await session.syncOnce()
        let job = try await backend.book(customer, at: Places.oerlikon)
        _ = try await session.syncOnce()
        try backend.pause()
        let abandoned = Task { try await session.syncOnce() }
        abandoned.cancel()
        let inbox = try await friend.inbox(position: Places.zurich, radiusKm: 10, filter: InboxFilter())
        XCTAssertEqual(inbox.items.count, 1, "the cache answers while a call hangs")
        _ = await abandoned.result
        try backend.resume()
        _ = try await session.syncOnce()
        let offer = try await friend.offer(jobId: job)
        XCTAssertNotNil(offer)
    }

    /// Releasing the role object closes the account: a `Session` still held fails with
    /// `session_closed`, and the same database opens again.
    func testReleasingTheRoleObjectClosesItsSession() async throws {
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        var friend: FriendSession? = try await open(anna, "anna.db")
        let session = try XCTUnwrap(friend).session()
        _ = try await session.syncOnce()
        friend = nil
        let closed = await code { _ = try await session.syncOnce() }
        XCTAssertEqual(closed, "session_closed")
        let status = await code { _ = try session.syncStatus() }
        XCTAssertEqual(status, "session_closed")
        let again = try await open(anna, "anna.db")
        _ = try await again.session().syncOnce()
    }

    func testTheCacheAnswersAfterTheBackendStops() async throws {
        let customer = try await backend.createCustomer("Heidi")
        let anna = try await backend.createFriend("Anna", home: Places.zurich)
        let first = try await backend.book(customer, at: Places.oerlikon)
        let second = try await backend.book(customer, at: Places.oerlikon)
        let friend = try await open(anna, "anna.db")
        _ = try await friend.session().syncOnce()
        guard case .won = try await friend.accept(jobId: first) else { return XCTFail("not won") }
        backend.stop()

        let offline = await code { _ = try await friend.session().syncOnce() }
        XCTAssertEqual(offline, "offline")
        let inbox = try await friend.inbox(position: Places.zurich, radiusKm: 10, filter: InboxFilter())
        XCTAssertEqual(inbox.items.map(\.offer.id), [second])
        let job = try await friend.job(jobId: first)
        XCTAssertEqual(job.details.address?.street, "Geheimweg 42")
        let accept = try await friend.accept(jobId: second)
        XCTAssertEqual(accept, .offline)
        _ = try await friend.checkIn(jobId: first)
        let queued = try await friend.job(jobId: first)
        XCTAssertEqual(queued.details.state, .onSite)
        XCTAssertEqual(queued.pendingActions, ["check_in"])
    }
}

// MARK: - Support

enum Places {
    static let zurich = GeoPoint(lat: 47.3779, lon: 8.5403)
    static let oerlikon = GeoPoint(lat: 47.4111, lon: 8.5441)
    static let bern = GeoPoint(lat: 46.9480, lon: 7.4474)
}

struct Account {
    let id: String
    let token: String
}

final class TestSecrets: SecretsProvider, @unchecked Sendable {
    private let token: String
    private let key: Data
    init(token: String, key: Data = Data(repeating: 7, count: 32)) {
        self.token = token
        self.key = key
    }
    func accessToken() throws -> String { token }
    func dataKey() throws -> Data { key }
}

final class InboxCounter: InboxListener, @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    private let onCall: () -> Void
    init(_ onCall: @escaping () -> Void) { self.onCall = onCall }
    var count: Int { lock.lock(); defer { lock.unlock() }; return calls }
    func onInboxChanged() {
        lock.lock()
        calls += 1
        lock.unlock()
        onCall()
    }
}

/// friend-backend as a child process on a free loopback port with a fresh database.
final class TestBackend {
    static let admin = "swift-test-admin"
    private let process = Process()
    private let dir: URL
    let baseUrl: String

    init() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../..").standardized
        let binary = ProcessInfo.processInfo.environment["FRIENDCORE_BACKEND"]
            ?? root.appendingPathComponent("target/debug/friend-backend").path
        dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let port = Int.random(in: 20000...60000)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--addr", "127.0.0.1:\(port)", "--db", dir.appendingPathComponent("backend.db").path,
                             "--admin-token", TestBackend.admin, "--no-dev-seed"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        baseUrl = "http://127.0.0.1:\(port)"
        // Wait for the "listening on" line, then keep draining the pipe.
        let handle = output.fileHandleForReading
        var seen = ""
        let deadline = Date().addingTimeInterval(20)
        while !seen.contains("listening on"), Date() < deadline {
            seen += String(decoding: handle.availableData, as: UTF8.self)
        }
        guard seen.contains("listening on") else { throw URLError(.cannotConnectToHost) }
        handle.readabilityHandler = { _ = $0.availableData }
    }

    func pause() throws { try signal(SIGSTOP) }
    func resume() throws { try signal(SIGCONT) }

    private func signal(_ sig: Int32) throws {
        guard kill(process.processIdentifier, sig) == 0 else { throw POSIXError(.ESRCH) }
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: dir)
    }

    func createFriend(_ name: String, home: GeoPoint) async throws -> Account {
        let body: [String: Any] = ["name": name, "home": ["lat": home.lat, "lon": home.lon], "radius_km": 30,
                                   "categories": ["tv", "computer", "network", "mobile", "audio", "smart_home"],
                                   "tier": "friend"]
        let json = try await post("/v1/admin/friends", token: TestBackend.admin, body: body)
        return Account(id: json["id"] as! String, token: json["token"] as! String)
    }

    func createCustomer(_ name: String) async throws -> Account {
        let json = try await post("/v1/admin/customers", token: TestBackend.admin, body: ["name": name])
        return Account(id: json["id"] as! String, token: json["token"] as! String)
    }

    func book(_ customer: Account, at: GeoPoint) async throws -> String {
        let body: [String: Any] = [
            "service_id": "network.router_setup", "description": "Wi-Fi does not reach the bedroom",
            "timing": ["kind": "now"], "place": "on_site", "location": ["lat": at.lat, "lon": at.lon],
            "address": ["street": "Geheimweg 42", "postal_code": "8004", "city": "Zürich"],
            "contact": ["name": "Hildegard Vertraulich", "phone": "+41 79 555 12 34"],
        ]
        let json = try await post("/v1/customer/jobs", token: customer.token, body: body, key: UUID().uuidString)
        return (json["job"] as! [String: Any])["id"] as! String
    }

    private func post(_ path: String, token: String, body: [String: Any], key: String? = nil) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: baseUrl + path)!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let key { request.setValue(key, forHTTPHeaderField: "Idempotency-Key") }
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
}
