import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Logging
import Testing
import WarehouseSimulator

/// The client against the simulator's fault injection: every fault must end in the same panel as a clean run.
@Suite("Client under faults")
struct ClientFaultTests {
    static let statements = "/api/2.0/sql/statements"

    func sync(_ sim: RunningSimulator, _ dir: TempDir, disposition: Statement.Disposition? = nil,
              auth: Authentication? = nil, waitTimeout: Int = 10,
              progress: (@Sendable (String) -> Void)? = nil) throws -> SyncSummary {
        var settings = try sim.settings()
        if let auth { settings.authentication = auth }
        let client = StatementClient(settings: settings)
        client.retryPolicy.baseDelay = 0.01
        client.retryPolicy.maxDelay = 0.05
        client.waitTimeout = waitTimeout
        if let progress { client.logger = LogCapture.logger(progress) }
        var options = SyncOptions(table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
            keyColumn: "participant_id", outputDirectory: dir.sub("o"))
        options.disposition = disposition
        return try CDFSync(client: client, store: try PanelStore(directory: dir.sub("s")), options: options).run()
    }

    func expectCleanPanel(_ dir: TempDir) throws {
        #expect(try panelContents(dir.sub("s")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
    }

    @Test func a429StormWithRetryAfterIsRidden() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40))
        _ = sim.sim.addFault(Fault(match: .init(pathPrefix: Self.statements), count: 6, kind: .status, status: 429, retryAfter: 0))
        let dir = TempDir()
        _ = try sync(sim, dir)
        try expectCleanPanel(dir)
    }

    @Test func repeated503sAndAConnectionResetMidChunkAreRetried() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40))
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: Self.statements), count: 2, kind: .status, status: 503))
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: Self.statements), count: 2, kind: .resetMidBody))
        let dir = TempDir()
        _ = try sync(sim, dir)
        try expectCleanPanel(dir)
    }

    /// Batches go to the writer in the middle of a chunk; when that chunk's response is then cut off and fetched
    /// again, the rows already handed over must be neither applied twice nor counted twice.
    @Test func aChunkCutOffAfterPartOfItWasAppliedCountsAndDeliversEveryRowOnce() throws {
        func run(faults: Bool) throws -> (SyncSummary, TempDir, Int) {
            final class Count: @unchecked Sendable {
                let lock = NSLock()
                var chunkGETs = 0
            }
            let count = Count()
            var config = Simulator.Configuration(rowsPerChunk: 40)
            config.requestLog = { line in
                if line.hasPrefix("GET ") && line.contains("/result/chunks/") { count.lock.withLock { count.chunkGETs += 1 } }
            }
            let sim = try RunningSimulator(configuration: config)
            if faults {
                _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: Self.statements), count: 2, kind: .resetMidBody))
            }
            let dir = TempDir()
            let client = StatementClient(settings: try sim.settings())
            client.retryPolicy.baseDelay = 0.01
            var options = SyncOptions(table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
                keyColumn: "participant_id", outputDirectory: dir.sub("o"))
            options.disposition = .inline
            options.batchSize = 7  // well inside a 40-row chunk
            let summary = try CDFSync(client: client, store: try PanelStore(directory: dir.sub("s")), options: options).run()
            return (summary, dir, count.lock.withLock { count.chunkGETs })
        }
        let (clean, cleanDir, cleanGETs) = try run(faults: false)
        let (cut, cutDir, cutGETs) = try run(faults: true)
        #expect(cleanGETs >= 2)  // the table spans several chunks
        #expect(cutGETs == cleanGETs + 2)  // both cut-off chunk responses were requested again
        try expectCleanPanel(cutDir)
        for (a, b) in [(clean.rowsRead, cut.rowsRead), (clean.inserted, cut.inserted), (clean.updated, cut.updated),
                       (clean.unchanged, cut.unchanged), (clean.deletesIgnored, cut.deletesIgnored),
                       (clean.preimagesIgnored, cut.preimagesIgnored), (clean.delivered, cut.delivered)] {
            #expect(a == b)
        }
        #expect(cut.unchanged == 0)
        let lines = try deliveredLines(cutDir.sub("o"))
        #expect(lines.count == (try deliveredLines(cleanDir.sub("o"))).count)
        #expect(Set(lines.map { $0["seq"] as! Int }).count == lines.count)
    }

    @Test func a400IsNotRetried() throws {
        let sim = try RunningSimulator()
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: Self.statements), count: 1, kind: .status, status: 400))
        let dir = TempDir()
        #expect(throws: SyncFailure.self) { _ = try sync(sim, dir) }
    }

    @Test func externalLinksWithoutAuthorizationAndExpiredLinksRefreshed() throws {
        // The simulator answers 400 to a link download that carries Authorization, so success proves it is absent.
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40, rowsPerExternalChunk: 60))
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: "/_blob/"), count: 3, kind: .expireLinks))
        let dir = TempDir()
        let s = try sync(sim, dir, disposition: .externalLinks)
        #expect(s.rowsRead > 0)
        try expectCleanPanel(dir)
    }

    @Test func theInlineCapFallsBackToExternalLinks() throws {
        let sim = try RunningSimulator(configuration: .init(inlineByteLimit: 2_000))
        let dir = TempDir()
        let lines = Lines()
        _ = try sync(sim, dir, disposition: .inline, progress: { lines.add($0) })
        #expect(lines.all.contains { $0.contains("inline limit") })
        try expectCleanPanel(dir)
    }

    @Test func aColdWarehouseShowsAsStarting() throws {
        let sim = try RunningSimulator()
        try sim.sim.setWarehouseState(id: "8a1c2f3d4e5b6a70", state: "STOPPED")
        let dir = TempDir()
        let lines = Lines()
        // wait_timeout 0s: the POST answers PENDING at once and the client polls while the warehouse starts.
        _ = try sync(sim, dir, waitTimeout: 0, progress: { lines.add($0) })
        #expect(lines.all.contains { $0.hasPrefix("warehouse starting (") })
        try expectCleanPanel(dir)
    }

    @Test func anOAuthTokenRevokedMidSyncIsRefreshedOnce() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40))
        // The third chunk request revokes the token it carries; the client must fetch a new one and go on.
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: Self.statements), count: 1, kind: .revokeToken))
        let dir = TempDir()
        _ = try sync(sim, dir, auth: .oauthM2M(clientID: "6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42", clientSecret: Secret("dose-demo-secret")))
        try expectCleanPanel(dir)
        let wrong = TempDir()
        #expect {
            _ = try sync(sim, wrong, auth: .oauthM2M(clientID: "6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42", clientSecret: Secret("nope")))
        } throws: { e in
            ((e as? SyncFailure)?.underlying as? DatabricksError)?.category == .authenticationFailed && !"\(e)".contains("nope")
        }
    }

    @Test func onlyReadStatementsLeaveTheClient() throws {
        let sim = try RunningSimulator()
        let client = StatementClient(settings: try sim.settings())
        for sql in ["DROP TABLE main.research.participants", "  insert into x values (1)", "UPDATE t SET a = 1",
                    "DELETE FROM t", "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "CREATE TABLE x (a INT)", ""] {
            #expect(throws: DatabricksError.self, "\(sql)") { try client.execute(Statement(sql: sql), sink: CollectingSink()) }
        }
        #expect(sim.sim.latestVersion(table: "main.research.participants") != nil)
    }
}

final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
