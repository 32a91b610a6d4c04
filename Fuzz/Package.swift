// swift-tools-version: 6.1
import PackageDescription

// A libFuzzer target over what cdfsync reads from the wire (design §2.8): the streaming JSON_ARRAY decoder (every
// body cut into pieces two ways, which must agree), the statement, chunk and manifest models with the manifest's
// consistency rule, and DESCRIBE HISTORY parsing with the listing rule and the row estimates. In a nested package
// so the root package never builds with the sanitizer. Run from the repository root:
//
//     make fuzz                        # builds with -sanitize=fuzzer, runs FUZZ_SECONDS (default 60) on Fuzz/corpus
//
// See docs/conformance.md (Fuzzing).

let package = Package(
    name: "cdfsync-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "cdfsync", path: "..")],
    targets: [
        .executableTarget(
            name: "ResponseFuzz",
            dependencies: [.product(name: "CDFSyncCore", package: "cdfsync")]
        )
    ]
)
