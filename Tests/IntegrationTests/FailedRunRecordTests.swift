import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A run that fails half-way keeps the batches it applied (each committed whole, design §2.2); its record and its
/// error must say so — with the counts of what stays in the panel and where the checkpoint is — not claim that
/// nothing was applied.
@Suite("Failed run record")
struct FailedRunRecordTests {
    @Test func aRunFailingMidStatementRecordsWhatItAppliedAndWhereItsCheckpointIs() throws {
        // The first chunk comes with the statement's response; every later chunk fetch is refused for good.
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 40))
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: "/api/2.0/sql/statements/"), count: nil,
            kind: .status, status: 400))
        let dir = TempDir()
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        client.retryPolicy.maxDelay = 0.05
        var options = SyncOptions(table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
            keyColumn: "participant_id", outputDirectory: dir.sub("o"))
        options.batchSize = 10
        options.disposition = .inline
        let store = try PanelStore(directory: dir.sub("s"))

        var caught: SyncFailure?
        do {
            _ = try CDFSync(client: client, store: store, options: options).run()
        } catch let f as SyncFailure {
            caught = f
        }
        let failure = try #require(caught, "the sync should fail on the refused chunk")
        let inPanel = try store.count()
        #expect(inPanel > 0, "no batch of the first chunk was applied: the test does not exercise a partial run")
        #expect(failure.summary.inserted == inPanel, "the failed run's record must count the rows it left in the panel")
        #expect(failure.summary.rowsRead >= inPanel)
        // The checkpoint may have moved to a version whose rows were all handed over (v0, the table's creation),
        // never further; the record and the message name where it is.
        let stored = try store.checkpoint(pipeline: options.pipeline)?.tableVersion
        #expect(failure.summary.checkpointVersion == stored)
        let expectedCheckpoint = stored.map { "checkpoint moved from the beginning (never synced) to v\($0)" }
            ?? "checkpoint unchanged at the beginning (never synced)"
        #expect(failure.summary.failureState.hasPrefix(expectedCheckpoint + "; \(inPanel) change(s) applied before the failure (\(inPanel) inserted"))

        let record = try #require(try store.runs(limit: 1).first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(record.json)) as? [String: Any])
        let counts = try #require(json["counts"] as? [String: Any])
        #expect(json["status"] as? String == "failed")
        #expect(counts["inserted"] as? Int == inPanel)
        #expect((json["checkpoint_version"] as? Int).map(Int64.init) == stored)

        // The next run (the fault cleared) reads the applied rows again and finds them unchanged.
        sim.sim.clearFaults()
        let second = try CDFSync(client: client, store: store, options: options).run()
        #expect(second.unchanged == inPanel)
        #expect(second.inserted + inPanel == (try store.count()))
        #expect(second.checkpointVersion == second.toVersion)
        #expect((stored ?? -1) < (second.toVersion ?? -1), "the failed run's checkpoint passed rows it had not applied")
    }
}
