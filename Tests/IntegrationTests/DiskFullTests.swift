import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

#if canImport(Glibc)
import Glibc
#endif

/// A full disk under the state directory is named as such, and an output directory that cannot be written is found
/// before anything is read.
@Suite("Disk full and unwritable output directories", .serialized)
struct DiskFullTests {
    static let table = "main.research.disk_panel"

    /// A tmpfs of `size` bytes mounted on a fresh directory, unmounted on deinit: a real file system that runs out
    /// of space (or, `readOnly`, refuses every write). Mounting needs CAP_SYS_ADMIN (root in a container).
    final class SmallFileSystem {
        let dir = TempDir("cdfsync-tmpfs")
        var path: String { dir.path }

        init?(size: Int, readOnly: Bool = false) {
            let rc = Glibc.mount("tmpfs", dir.path, "tmpfs", readOnly ? UInt(MS_RDONLY) : 0, "size=\(size)")
            if rc != 0 { return nil }
        }

        deinit { _ = umount2(dir.path, Int32(MNT_DETACH)) }
    }

    /// Whether this process may mount a tmpfs (tests that need one are skipped where it may not).
    static let canMount: Bool = SmallFileSystem(size: 1 << 16) != nil

    func simulator(log: ErrorCauseTests.RequestLog? = nil) throws -> RunningSimulator {
        var config = Simulator.Configuration()
        if let log { config.requestLog = { log.add($0) } }
        let sim = try RunningSimulator(configuration: config)
        try sim.sim.addSyntheticTable(name: Self.table, rows: 20_000, seed: 5)
        return sim
    }

    func sync(_ sim: RunningSimulator, state: String, output: String) throws -> SyncSummary {
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        let options = SyncOptions(table: try QualifiedName(parsing: Self.table), keyColumn: "participant_id",
            outputDirectory: output)
        return try CDFSync(client: client, store: try PanelStore(directory: state), options: options).run()
    }

    /// LMDB reports a write that ran out of space part-way as EIO; the error must still say the device is full.
    @Test(.enabled(if: canMount, "needs permission to mount a tmpfs"))
    func aFullStateDirectorySaysNoSpaceLeftOnDevice() throws {
        let fs = try #require(SmallFileSystem(size: 768 << 10))
        let sim = try simulator()
        let out = TempDir()
        var message = ""
        do {
            _ = try sync(sim, state: fs.path + "/state", output: out.sub("o"))
        } catch let e as SyncFailure {
            message = "\(e.underlying)"
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("no space left on device"), "\(message)")
        #expect(!message.contains("Input/output error"), "\(message)")
        #expect(message.contains(fs.path + "/state"), "\(message)")
    }

    /// Anywhere, without mounting: the real `cdfsync` under a file size limit (`ulimit -f`, SIGXFSZ ignored, so a
    /// write past it fails instead of killing the process). LMDB cuts its write short at the limit and reports EIO;
    /// the error names the limit rather than a bare "Input/output error".
    @Test func aFileSizeLimitIsNamedNotAnIOError() throws {
        let binary = try BuiltProduct.cdfsync.path
        let sim = try simulator()
        let dir = TempDir()
        // 512-byte blocks: 600 KB, room for the store's first pages, not for 20 000 participants.
        let script = "trap '' XFSZ; ulimit -f 1200; exec \"$0\" \"$@\""
        let (status, output) = try runProcess("/bin/sh", ["-c", script, binary,
            "sync", "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70", "--table", Self.table,
            "--key", "participant_id", "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")],
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"])
        #expect(status == 1, "\(output)")
        let error = output.split(separator: "\n").first { $0.hasPrefix("error:") }.map(String.init) ?? ""
        #expect(error.contains("ulimit -f: 614400 bytes"), "\(output)")
        #expect(!error.contains("Input/output error"), "\(output)")
    }

    /// An output directory below a regular file cannot be created: the sync says so before its first statement.
    @Test func anOutputDirectoryThatCannotBeCreatedFailsBeforeReading() throws {
        let log = ErrorCauseTests.RequestLog()
        let sim = try simulator(log: log)
        let dir = TempDir()
        #expect(FileManager.default.createFile(atPath: dir.sub("file"), contents: Data("x".utf8)))
        let output = dir.sub("file") + "/out"
        let message = failureText { _ = try sync(sim, state: dir.sub("s"), output: output) }
        #expect(message.contains(output), "\(message)")
        #expect(log.count("POST /api/2.0/sql/statements") == 0, "\(message)")
    }

    /// An output directory on a read-only file system: found before the first statement, named in the error.
    @Test(.enabled(if: canMount, "needs permission to mount a tmpfs"))
    func aReadOnlyOutputDirectoryFailsBeforeReading() throws {
        let fs = try #require(SmallFileSystem(size: 1 << 16, readOnly: true))
        let log = ErrorCauseTests.RequestLog()
        let sim = try simulator(log: log)
        let dir = TempDir()
        let message = failureText { _ = try sync(sim, state: dir.sub("s"), output: fs.path) }
        #expect(message.contains(fs.path), "\(message)")
        #expect(message.contains("read-only"), "\(message)")
        #expect(log.count("POST /api/2.0/sql/statements") == 0, "\(message)")
    }

    /// The same for a directory this (non-root) user may not write; root may write anywhere, so it is skipped there.
    @Test(.enabled(if: geteuid() != 0, "root may write any directory"))
    func anOutputDirectoryWithoutWritePermissionFailsBeforeReading() throws {
        let log = ErrorCauseTests.RequestLog()
        let sim = try simulator(log: log)
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.sub("out"), withIntermediateDirectories: true)
        chmod(dir.sub("out"), 0o555)
        defer { chmod(dir.sub("out"), 0o755) }
        let message = failureText { _ = try sync(sim, state: dir.sub("s"), output: dir.sub("out")) }
        #expect(message.contains(dir.sub("out")) && message.contains("permission denied"), "\(message)")
        #expect(log.count("POST /api/2.0/sql/statements") == 0, "\(message)")
    }

    func failureText(_ body: () throws -> Void) -> String {
        do {
            try body()
            return ""
        } catch let e as SyncFailure {
            return "\(e.underlying)"
        } catch {
            return "\(error)"
        }
    }
}
