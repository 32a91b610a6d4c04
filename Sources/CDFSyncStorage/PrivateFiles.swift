import CDFSyncCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place cdfsync creates the directories and files that hold panel data, secrets and their metadata, and
/// checks their modes.
///
/// The panel holds names, emails and phones; the connection store holds hosts and sealed secrets. So the state
/// directory, the connection store and the delivery directories are created `0700` and their files `0600` (a
/// delivery directory may be opened to a group with a sink's `file_mode`), set explicitly after creating them:
/// the process's umask neither widens them (`umask 000` gave `0777` output directories) nor narrows them (a
/// `file_mode` of `0640` is what the reader in that group gets). Directories that already exist are left as they
/// are — someone chose their mode — and ``widerThan(_:allowed:)`` lets `status` and `pipeline validate` warn about
/// them.
public enum PrivateFiles {
    /// Directories only their owner may enter.
    public static let directoryMode: mode_t = 0o700
    /// Files only their owner may read and write.
    public static let fileMode: mode_t = 0o600

    /// The mode of a directory whose files have `fileMode`: each class that may read the files may also enter the
    /// directory (`0600` → `0700`, `0640` → `0750`, `0644` → `0755`).
    public static func directoryMode(forFileMode fileMode: mode_t) -> mode_t {
        var mode = fileMode & 0o777
        for (read, search) in [(mode_t(0o400), mode_t(0o100)), (0o040, 0o010), (0o004, 0o001)] where mode & read != 0 {
            mode |= search
        }
        return mode
    }

    /// Creates `path` and its missing parents (like `mkdir -p`) with exactly `mode`; directories that exist keep
    /// theirs.
    ///
    /// - Throws: ``StorageError`` naming the path: a component is a file, permission denied, the path is longer
    ///   than the kernel takes (checked before anything is created), ...
    public static func makeDirectory(_ path: String, mode: mode_t = directoryMode) throws {
        guard path.utf8.count < FilePaths.maxLength else {
            throw StorageError.system(ENAMETOOLONG, "creating directory", path: path)
        }
        if isDirectory(path) { return }
        for prefix in FilePaths.prefixes(path) {
            if mkdir(prefix, mode) == 0 {
                // mkdir applied the umask; the directory gets the mode asked for.
                if chmod(prefix, mode) != 0 { throw StorageError.system(errno, "setting the mode of", path: prefix) }
                continue
            }
            let err = errno
            guard err == EEXIST else { throw StorageError.system(err, "creating directory", path: prefix) }
            guard isDirectory(prefix) else { throw StorageError.system(ENOTDIR, "creating directory", path: prefix) }
        }
        // `prefixes` is empty for "" and "/": the first is the current directory, the second the root.
        guard path.isEmpty || isDirectory(path) else {
            throw StorageError.system(ENOTDIR, "creating directory", path: path)
        }
    }

    /// Opens `path` with `flags` (`O_CREAT` is added) and gives the file exactly `mode`, whatever the umask and
    /// whatever mode an older file had. Returns the descriptor (`O_CLOEXEC`).
    public static func open(_ path: String, flags: Int32, mode: mode_t = fileMode) throws -> Int32 {
        let fd = openFile(path, flags | O_CREAT | O_CLOEXEC, mode)
        if fd < 0 { throw StorageError.system(errno, flags & O_EXCL != 0 ? "creating" : "opening", path: path) }
        if fchmod(fd, mode) != 0 {
            let err = errno
            close(fd)
            throw StorageError.system(err, "setting the mode of", path: path)
        }
        return fd
    }

    /// Gives the existing file `path` exactly `mode` (for files another library creates, such as LMDB's
    /// `data.mdb` and `lock.mdb`). A missing file is not an error.
    public static func restrict(_ path: String, to mode: mode_t = fileMode) throws {
        if chmod(path, mode) != 0 && errno != ENOENT {
            throw StorageError.system(errno, "setting the mode of", path: path)
        }
    }

    /// Writes `bytes` to `path` (created or truncated) with exactly `mode`.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = fileMode) throws {
        let fd = try open(path, flags: O_WRONLY | O_TRUNC, mode: mode)
        defer { close(fd) }
        try bytes.withUnsafeBytes { try writeAll(fd, $0, path) }
    }

    /// The permission bits (`st_mode & 0777`) of `path`, or nil when it cannot be examined.
    public static func mode(_ path: String) -> mode_t? {
        // Through FileManager: `struct stat` is not visible to every build of this module (member import
        // visibility finds it in CDispatch in release builds).
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let permissions = attributes[.posixPermissions] as? NSNumber
        else { return nil }
        return mode_t(permissions.uint16Value) & 0o777
    }

    /// The mode of `path` when it grants more than `allowed` (some bit outside it); nil when it does not, or
    /// cannot be examined.
    public static func widerThan(_ path: String, allowed: mode_t) -> mode_t? {
        guard let m = mode(path), m & ~allowed != 0 else { return nil }
        return m
    }

    /// A warning for an existing directory that grants more than `allowed` — naming it (`what`: "state
    /// directory"), its mode and the command that narrows it — or nil when it does not (or does not exist).
    public static func wideDirectoryWarning(_ path: String, allowed: mode_t, what: String) -> String? {
        guard let m = widerThan(path, allowed: allowed) else { return nil }
        let shown = FilePaths.shown(path)
        return "\(what) \(shown) is mode \(octal(m)), wider than \(octal(allowed)): users it was not meant for may "
            + "read the panel data in it; chmod \(octal(allowed)) \(shown)"
    }

    /// `0o640` → `0640`.
    public static func octal(_ mode: mode_t) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path.isEmpty ? "." : path, isDirectory: &isDirectory)
            && isDirectory.boolValue
    }
}

private func openFile(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, flags, mode)
    #elseif canImport(Musl)
    Musl.open(path, flags, mode)
    #else
    Darwin.open(path, flags, mode)
    #endif
}
