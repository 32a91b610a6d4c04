import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing

/// A sync against the simulator marks the run records other processes left `running` as interrupted (the record's
/// own rules are unit-tested in CDFSyncEngineTests' RunStatusTests).
@Suite("Run status (a sync)")
struct RunStatusSyncTests {
    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// The engine's own part: a run marks records left `running` by other processes as interrupted, and leaves a
    /// `running` record of its own process (another run of the same store object) alone.
    @Test func theNextRunMarksRunsOfGoneProcessesInterrupted() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let store = try PanelStore(directory: dir.sub("state"))
        // A run killed in an earlier container: same pid as this process, another process token.
        var gone = SyncSummary(pipeline: "main.research.participants", table: "main.research.participants")
        gone.processToken = "a-process-that-is-gone"
        let goneID = try store.appendRun(gone.json())
        let mine = SyncSummary(pipeline: "other", table: "main.research.other")
        let mineID = try store.appendRun(mine.json())

        let summary = try CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
            options: SyncOptions(table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
                keyColumn: "participant_id", outputDirectory: dir.sub("out"))).run()
        #expect(summary.inserted == 355)
        #expect(try object(try #require(try store.run(id: goneID)))["status"] as? String == "interrupted")
        #expect(try object(try #require(try store.run(id: mineID)))["status"] as? String == "running")
        #expect(try object(try #require(try store.run(id: summary.runID)))["status"] as? String == "succeeded")
    }
}
