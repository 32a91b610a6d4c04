import Foundation
import Synchronization

/// An executable of this package that tests run as a child process, found next to the test bundle built by the same
/// `swift build --build-tests` (or `swift test`) and refused when it is older than the sources it is built from.
///
/// A test that ran a binary left over from an earlier build would test code that is no longer there, and pass or
/// fail for reasons nobody can see. So there is no fallback to another build directory: a missing or stale binary is
/// an error that names it, its modification time and the newest source file.
public struct BuiltProduct: Sendable {
    /// The executable's name.
    public let name: String
    /// The target it is built from.
    public let target: String

    /// The `cdfsync` command.
    public static let cdfsync = BuiltProduct(name: "cdfsync", target: "cdfsync")
    /// The simulator's command.
    public static let dbsqlSim = BuiltProduct(name: "dbsql-sim", target: "dbsql-sim")
    /// The test child: the other process of the storage crash and cross-process tests (Tests/cdfsync-test-child).
    public static let testChild = BuiltProduct(name: "cdfsync-test-child", target: "cdfsync-test-child")

    /// Each target's source directory and the targets it depends on, as Package.swift declares them (keep the two
    /// in step: a dependency missing here would let a binary built before an edit of that dependency pass as fresh).
    static let targets: [String: (directory: String, dependencies: [String])] = [
        "CCurl": ("Sources/CCurl", []),
        "CLMDB": ("Sources/CLMDB", []),
        "CZstd": ("Sources/CZstd", []),
        "CDFSyncCore": ("Sources/CDFSyncCore", []),
        "CDFSyncStorage": ("Sources/CDFSyncStorage", ["CDFSyncCore", "CLMDB", "CZstd"]),
        "CDFSyncClient": ("Sources/CDFSyncClient", ["CDFSyncCore", "CCurl"]),
        "CDFSyncEngine": ("Sources/CDFSyncEngine", ["CDFSyncCore", "CDFSyncStorage", "CDFSyncClient"]),
        "WarehouseSimulator": ("Sources/WarehouseSimulator", ["CDFSyncCore"]),
        "CDFSyncService": (
            "Sources/CDFSyncService", ["CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore"]
        ),
        "cdfsync": (
            "Sources/cdfsync", ["CDFSyncEngine", "CDFSyncClient", "CDFSyncStorage", "CDFSyncCore", "CDFSyncService"]
        ),
        "dbsql-sim": ("Sources/dbsql-sim", ["WarehouseSimulator"]),
        "CDFSyncTestSupport": (
            "Tests/CDFSyncTestSupport", ["CDFSyncCore", "CDFSyncStorage", "CDFSyncClient", "WarehouseSimulator"]
        ),
        "cdfsync-test-child": ("Tests/cdfsync-test-child", ["CDFSyncTestSupport", "CDFSyncStorage"]),
    ]

    /// The targets (with their source directories, relative to the repository root) the executable is compiled from.
    public var sources: [(target: String, directory: String)] {
        var seen: Set<String> = []
        var pending = [target]
        while let t = pending.popLast() {
            guard seen.insert(t).inserted, let entry = Self.targets[t] else { continue }
            pending += entry.dependencies
        }
        return seen.sorted().compactMap { t in Self.targets[t].map { (t, $0.directory) } }
    }

    /// The directory of the executables built with the running test bundle: the bundle's own directory (Linux: the
    /// bundle is an executable, `.build/<triple>/<configuration>/<package>PackageTests.xctest`) or, when it is a
    /// directory bundle (macOS: `….xctest/Contents/MacOS/…`), the directory that holds the bundle.
    public static var productsDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var candidate = url
        while candidate.pathComponents.count > 1 {
            if candidate.pathExtension == "xctest" { return candidate.deletingLastPathComponent() }
            candidate.deleteLastPathComponent()
        }
        url.deleteLastPathComponent()
        return url
    }

    /// The executable's path, after checking that it exists and is not older than any of its source files.
    public var path: String {
        get throws {
            try Self.checked.withLock { cache in
                if let known = cache[name] { return try known.get() }
                let result = check()
                cache[name] = result
                return try result.get()
            }
        }
    }

    private static let checked = Mutex<[String: Result<String, BuiltProductError>]>([:])

    /// The executable's path, or why it cannot be used.
    ///
    /// A source file modified after the executable was linked makes it stale, unless a build compiled the file
    /// after that modification: the compiler then wrote the same object file (a file saved or checked out again
    /// without a change), and the build rightly did not link again. What the build compiled a file into is told by
    /// its dependency file (`<Target>.build/<file>.d`), which every compilation of the file rewrites.
    func check() -> Result<String, BuiltProductError> {
        Self.check(name: name, sources: sources, repository: repositoryRoot, products: Self.productsDirectory)
    }

    /// ``check()`` with the repository and the products directory given (for the tests of this rule).
    public static func check(
        name: String, sources: [(target: String, directory: String)], repository: URL, products: URL
    ) -> Result<String, BuiltProductError> {
        let path = products.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path), let built = modificationDate(path) else {
            return .failure(.missing(name: name, path: path))
        }
        var sawSource = false
        for (target, directory) in sources {
            let root = repository.appendingPathComponent(directory).path
            let records = products.appendingPathComponent(buildDirectoryName(target)).path
            for (file, modified) in files(under: root) {
                sawSource = true
                guard modified > built else { continue }
                if lastCompiled(file, records: records).map({ $0 < modified }) ?? true {
                    return .failure(.stale(name: name, path: path, built: built, source: directory + "/" + file,
                        modified: modified))
                }
            }
        }
        guard sawSource else { return .failure(.noSources(name: name, directories: sources.map { $0.directory })) }
        return .success(path)
    }

    /// `<target>.build`, the directory of a target's intermediate files (the target's name as a C identifier).
    static func buildDirectoryName(_ target: String) -> String {
        String(target.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + ".build"
    }

    /// When the build last compiled `file` (a path relative to its target's directory), from its dependency file in
    /// `records` — or, for a whole-module build that writes one for the module, the newest there; nil when there is
    /// none (a header or a module map: any change to those counts).
    static func lastCompiled(_ file: String, records: String) -> Date? {
        guard file.hasSuffix(".swift") else { return nil }
        let stem = String((file.split(separator: "/").last ?? "").dropLast(".swift".count))
        if let date = modificationDate(records + "/" + stem + ".d") { return date }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: records)) ?? []
        return names.filter { $0.hasSuffix(".d") }.compactMap { modificationDate(records + "/" + $0) }.max()
    }

    /// Every regular file under `root` (relative path and modification time).
    static func files(under root: String) -> [(path: String, modified: Date)] {
        guard let walk = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [(path: String, modified: Date)] = []
        while let relative = walk.nextObject() as? String {
            let file = root + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue,
                let date = modificationDate(file)
            else { continue }
            out.append((relative, date))
        }
        return out
    }

    static func modificationDate(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}

/// Why a built executable cannot be used.
public enum BuiltProductError: Error, CustomStringConvertible, Sendable {
    case missing(name: String, path: String)
    case stale(name: String, path: String, built: Date, source: String, modified: Date)
    case noSources(name: String, directories: [String])

    public var description: String {
        switch self {
        case .missing(let name, let path):
            return "\(name) is not built next to the test bundle (\(path)): run `swift build --build-tests` "
                + "before `swift test --skip-build`, or `make test`"
        case .stale(let name, let path, let built, let source, let modified):
            return "\(name) at \(path) (modified \(Self.format(built))) is older than its source \(source) "
                + "(modified \(Self.format(modified)), not compiled since): it would test code that is no longer "
                + "there; rebuild with `swift build --build-tests` before `swift test --skip-build`, or run `make test`"
        case .noSources(let name, let directories):
            return "no source file of \(name) found under \(directories.joined(separator: ", ")) "
                + "in \(repositoryRoot.path)"
        }
    }

    static func format(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
