import CDFSyncStorage
import Foundation

/// `cdfsync-test-child` (Tests/cdfsync-test-child): the other process of the storage tests that need two — one killed
/// with SIGKILL while it applies batches, one writing into a store the test holds open. Its workloads are defined
/// here, so that the test checking what the child wrote and the child itself build the same batches.
///
/// The child refuses to run unless `CDFSYNC_TEST_CHILD` names the mode it is asked for: it writes into the directory
/// it is given, and must not do so because someone ran it by hand.
public enum TestChild {
    /// What the child does.
    public enum Mode: String, CaseIterable, Sendable {
        /// Applies ``applyLoopBatch(_:)`` 0, 1, 2, … with checkpoint `b` into the store, printing `applied <b>` after
        /// each commit, until it is killed (or 100,000 batches later).
        case applyUntilKilled = "apply-until-killed"
        /// Checks that opening the store as a writer is refused (`inUse`: the test holds it), then opens it as a
        /// reader — as a process on a file system that does not share `flock` locks would get past the lock — and
        /// applies one new key, `other` (``writeAKeyChange``). Exits 0 only if both happened.
        case writeAKeyAsReader = "write-a-key-as-reader"
    }

    /// The environment variable that must name the mode.
    public static let guardVariable = "CDFSYNC_TEST_CHILD"

    /// The child, ready to run `mode` on `directory` (not started; its output goes nowhere unless the caller sets
    /// `standardOutput`; what it says when it fails goes to this process's standard error).
    public static func process(_ mode: Mode, directory: String) throws -> Process {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try BuiltProduct.testChild.path)
        child.arguments = [mode.rawValue, directory]
        var environment = ProcessInfo.processInfo.environment
        environment[guardVariable] = mode.rawValue
        child.environment = environment
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.standardError
        return child
    }

    /// A small JSON record: `{"name":"<name>","n":<n>}`.
    public static func record(_ name: String, _ n: Int = 0) -> [UInt8] { Array(#"{"name":"\#(name)","n":\#(n)}"#.utf8) }

    /// Rows of each batch of ``Mode/applyUntilKilled`` that are new keys.
    public static let applyLoopBatchSize = 300

    /// Batch `b` of ``Mode/applyUntilKilled``: 300 new keys `b<b>-<i>`, plus a changed update of the first 100 keys
    /// of batch `b - 1`, all at commit version `b`.
    public static func applyLoopBatch(_ b: Int) -> [PanelStore.Change] {
        var rows = (0..<applyLoopBatchSize).map { i in
            PanelStore.Change(externalID: "b\(b)-\(i)", commitVersion: Int64(b), record: record("b\(b)", i))
        }
        if b > 0 {
            rows += (0..<100).map { i in
                PanelStore.Change(externalID: "b\(b - 1)-\(i)", commitVersion: Int64(b), record: record("upd\(b)", i))
            }
        }
        return rows
    }

    /// The one change of ``Mode/writeAKeyAsReader``, applied with scope `s` and pipeline `p`.
    public static let writeAKeyChange = PanelStore.Change(
        externalID: "other", commitVersion: 1, record: record("other", 1), email: "other@example.com")
}
