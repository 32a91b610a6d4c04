import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// `--max-store-size` sets the state store's LMDB map. A bad value is refused naming the option; a store that fills
/// up stops the run with a hint in the CLI's terms, keeps what was applied, and a rerun with a larger size resumes
/// from the checkpoint and ends with exactly the panel and the output of a run that never ran out of room.
@Suite("CLI: --max-store-size")
struct StoreSizeCLITests {
    static let table = "main.research.synthetic_panel"

    @Test(arguments: [("abc", "is not a size"), ("1M", "outside 16M…64T"), ("65T", "outside 16M…64T"), ("5X", "is not a size"), ("0", "is not a size")])
    func aBadSizeIsRefusedNamingTheOption(value: String, reason: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try runCLI(["sync", "--table", "main.research.participants", "--key", "participant_id",
                            "--max-store-size", value], port: sim.port, dir: dir)
        #expect(r.status != 0)
        #expect(r.output.contains("--max-store-size") && r.output.contains(reason), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("state")), "nothing was opened for a refused option")
    }

    @Test func aFullStoreStopsTheRunAndALargerSizeResumesWithNothingLost() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 5_000))
        try sim.sim.addSyntheticTable(name: Self.table, rows: 60_000, seed: 11, updateFraction: 0.2, updateVersions: 2)
        let args = ["sync", "--table", Self.table, "--key", "participant_id", "--batch-size", "5000",
                    "--disposition", "inline"]

        let reference = TempDir("store-size-ref")
        let ref = try runCLI(args, port: sim.port, dir: reference)
        #expect(ref.status == 0, "\(ref.output)")

        let dir = TempDir("store-size")
        let full = try runCLI(args + ["--max-store-size", "16M"], port: sim.port, dir: dir)
        #expect(full.status != 0, "a 60,000-row panel does not fit in 16 MB: \(full.output)")
        #expect(full.output.contains("is full"), "\(full.output)")
        #expect(full.output.contains("--max-store-size"), "the hint names the option: \(full.output)")
        let partial = try CrashSafetyTests().panelLines(dir)
        #expect(!partial.isEmpty, "the batches applied before the store filled up are kept")

        let resumed = try runCLI(args + ["--max-store-size", "1G"], port: sim.port, dir: dir)
        #expect(resumed.status == 0, "\(resumed.output)")
        let crash = CrashSafetyTests()
        #expect(try crash.panelLines(dir) == (try crash.panelLines(reference)))
        #expect(try crash.outputLines(dir) == (try crash.outputLines(reference)))
    }

    /// Under an address-space limit smaller than the default map, opening the store fails with the hint to lower
    /// `--max-store-size`, and a size that fits opens it.
    @Test func anAddressSpaceLimitBelowTheSizeSaysToLowerIt() throws {
        let dir = TempDir()
        // A store some sync wrote (`runs` only opens existing ones), small, closed again before the CLI opens it.
        do { _ = try PanelStore(directory: dir.sub("state"), mapSize: 1 << 30) }
        func runs(_ extra: String) throws -> (status: Int32, output: String) {
            // 4 GB of address space: room for the process, not for the default 64G map.
            try runProcess("/bin/bash", ["-c", "ulimit -v 4000000 && exec \"$0\" runs --state-dir \"$1\" \(extra)",
                                         try BuiltProduct.cdfsync.path, dir.sub("state")])
        }
        let refused = try runs("")
        #expect(refused.status != 0)
        #expect(refused.output.contains("lower --max-store-size"), "\(refused.output)")
        let opened = try runs("--max-store-size 1G")
        #expect(opened.status == 0, "\(opened.output)")
    }
}
