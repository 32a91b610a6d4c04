import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A hostile (or mistaken) pipeline file from `Tests/hostile-pipelines/`.
func hostilePipeline(_ name: String) -> String {
    repositoryRoot.appendingPathComponent("Tests/hostile-pipelines/\(name)").path
}

/// The pipeline files of `Tests/hostile-pipelines/`, one per class, each refused with the problem it has: its line
/// and column, its field, and what to do — where a loose reading imported rows a filter excluded, people who never
/// opted in, or wrote outside the output directory.
@Suite("Pipeline files: hostile and mistaken ones")
struct HostilePipelineTests {
    /// What loading `file` says (fails the test when it loads).
    func refusal(_ file: String, environment: [String: String] = [:]) -> String {
        do {
            let p = try PipelineLoader.load(path: hostilePipeline(file), environment: environment)
            Issue.record("\(file) loaded: \(p)")
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        ("typo-filter.yaml", "line 6, column 1: filter: unknown field (did you mean filters?)"),
        ("typo-consent.yaml", "line 6, column 1: consnet: unknown field (did you mean consent?)"),
        ("typo-nested.yaml", "line 7, column 3: consent.colum: unknown field (did you mean column?)"),
        ("typo-nested.yaml", "line 9, column 1: shedule: unknown field (did you mean schedule?)"),
        ("syntax-error.yaml", "not valid YAML: line 6, column 6:"),
        ("path-traversal-name.yaml", "line 3, column 7: name: '../../../x' must not start with '.' (allowed: letters"),
        ("header-injection-name.yaml", #"line 2, column 7: name: 'panel\u{d}\u{a}X-Injected: yes' holds characters a name may not (allowed: letters A-Z a-z, digits 0-9, '-', '_' and '.' (not first))"#),
        ("webhook-userinfo.yaml", "line 7, column 26: sinks[0].url: the URL carries user info"),
        ("webhook-lookalike-host.yaml", "line 7, column 26: sinks[0].url: plain http is refused for 127.0.0.1.nip.io"),
        ("long-name.yaml", "line 2, column 7: name: is 600 bytes; a name keys the pipeline's state and may be at most 255 bytes"),
        ("unset-variable.yaml", "line 3, column 52: connection.host: environment variable CDFSYNC_TEST_UNSET_HOST is not set"),
        ("bad-file-mode.yaml", "sinks[0].file_mode: '0755' sets execute bits"),
    ])
    func aHostileFileIsRefusedNamingLineColumnAndField(file: String, problem: String) {
        let message = refusal(file)
        #expect(message.contains(problem), "\(message)")
    }

    @Test func aWorkspaceHostIsCheckedAsTheConnectionWillUseIt() {
        #expect {
            _ = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML.replacingOccurrences(
                of: "{warehouse_id: 8a1c2f3d4e5b6a70}", with: "{warehouse_id: 8a1c2f3d4e5b6a70, host: \"http://localhost@192.0.2.1\"}"))
        } throws: { e in "\(e)".contains("line 2, column 52: connection.host: workspace host: the URL carries user info") }
    }

    @Test func everyProblemOfAFileIsReportedAtOnceInLineOrder() {
        let message = refusal("typo-nested.yaml")
        // The unknown keys, and what the one under consent leaves missing.
        #expect(message.contains("has 3 problems"), "\(message)")
        #expect(message.contains("line 7, column 3: consent.column: give the column, or map consent_status"), "\(message)")
        let consent = message.range(of: "consent.colum")?.lowerBound
        let schedule = message.range(of: "shedule")?.lowerBound
        #expect(consent != nil && schedule != nil && consent! < schedule!, "\(message)")
    }

    @Test func aMissingFileOrADirectoryIsNamedAsSuch() throws {
        let dir = TempDir("pipeline-paths")
        try "name: p\n".write(toFile: dir.sub("panel.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir.sub("folder.yaml"), withIntermediateDirectories: true)
        #expect { _ = try PipelineLoader.load(path: dir.sub("panel.yml")) } throws: { e in
            "\(e)".contains("panel.yml does not exist (pipeline files there: folder.yaml, panel.yaml)")
        }
        #expect { _ = try PipelineLoader.load(path: dir.sub("folder.yaml")) } throws: { e in
            "\(e)".contains("folder.yaml is a directory")
        }
        #expect { _ = try PipelineLoader.load(path: dir.sub("none/x.yaml")) } throws: { e in
            "\(e)".contains("x.yaml does not exist —")
        }
    }

    @Test func aTypoFarFromEveryFieldListsTheFieldsInstead() {
        #expect {
            _ = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nwatermark: {zzzzzzzz: 1}\n")
        } throws: { e in
            "\(e)".contains("watermark.zzzzzzzz: unknown field (allowed: column, lookback_seconds, page_size)")
        }
    }

    @Test func aValueOfTheWrongKindIsNamedWithItsPlace() {
        #expect {
            _ = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nfilters: {column: country}\n")
        } throws: { e in
            "\(e)".contains("line 8, column 10: filters: expected a list, found a mapping")
        }
    }

    @Test func anEventsPipelineWithoutValidationRequiresItsEventID() throws {
        let p = try PipelineLoader.load(path: hostilePipeline("events-without-validation.yaml"))
        #expect(p.validation.required == ["event_id"])
        // A validation block without `required` gets the same default.
        let q = try PipelineLoader.load(yaml: """
            name: activity
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.participants
            kind: events
            mapping: {event_id: participant_id}
            validation: {max_invalid_ratio: 0.1}
            """)
        #expect(q.validation.required == ["event_id"] && q.validation.maxInvalidRatio == 0.1)
    }

    @Test func variablesAreExpandedInValuesButNotInEnvFieldsAndDollarDollarIsADollar() throws {
        let p = try PipelineLoader.load(yaml: """
            name: ${PIPELINE}
            connection: {warehouse_id: 8a1c2f3d4e5b6a70, host: "https://${HOST}", token_env: "${NOT_EXPANDED}"}
            source: main.research.participants
            mapping: {external_id: participant_id, email: email}
            filters: [{column: company, op: eq, value: "US$$5 ${MISSING_IS_ESCAPED} US$5"}]
            sinks: [{type: ndjson, directory: "${OUT}/panel"}]
            """.replacingOccurrences(of: "${MISSING_IS_ESCAPED}", with: "$${MISSING}"),
            environment: ["PIPELINE": "panel", "HOST": "dbc-1.cloud.databricks.com", "OUT": "/data/out"])
        #expect(p.name == "panel")
        #expect(p.connection.host == "https://dbc-1.cloud.databricks.com")
        #expect(p.connection.tokenEnv == "${NOT_EXPANDED}", "an *_env field names a variable; it is not expanded")
        #expect(p.filters.first?.value == .scalar("US$5 ${MISSING} US$5"))
        #expect(p.sinks.first?.directory == "/data/out/panel")
        // A variable set to the empty text is the empty text; a malformed reference is a problem of its field.
        #expect(try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nstate_dir: x${EMPTY}",
            environment: ["EMPTY": ""]).stateDir == "x")
        #expect {
            _ = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML + "\nstate_dir: ${OUT", environment: [:])
        } throws: { e in "\(e)".contains("state_dir: '${OUT' has no closing '}' (write $$ for a literal $)") }
    }

    @Test func aNameAtTheLimitKeysEveryPieceOfStateAndOneByteMoreIsRefused() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let longest = String(repeating: "n", count: PipelineLoader.maxNameBytes)
        var p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML
            .replacingOccurrences(of: "name: panel", with: "name: \(longest)"))
        // Its checkpoint, identity keys, output route and webhook cursor (the longest key) all fit.
        p.sinks = [.init(type: .ndjson, directory: dir.sub("out")),
                   .init(type: .webhook, url: "\(sim.baseURL)/_hook/long", batchSize: 100)]
        let store = try PanelStore(directory: dir.sub("s"))
        let summary = try CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
            options: try SyncOptions(pipeline: p)).run()
        #expect(summary.inserted > 0 && summary.webhookDelivered == summary.delivered)
        #expect {
            _ = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML
                .replacingOccurrences(of: "name: panel", with: "name: \(longest)n"))
        } throws: { e in "\(e)".contains("may be at most \(PipelineLoader.maxNameBytes) bytes") }
    }

    /// A pipeline built in code (not loaded) with a name that climbs out of `.cdfsync/out` is refused before
    /// anything is opened or written.
    @Test func aTraversingNameNeverBecomesAnOutputDirectory() throws {
        var p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        for name in ["../../../x", "a/b", "..", ".hidden", "tab\there"] {
            p.name = name
            #expect(throws: SyncError.self, "\(name)") { _ = try SyncOptions(pipeline: p) }
        }
    }

    @Test func theCLISaysTheSameAndExits1() throws {
        let dir = TempDir()
        let r = try runProcess(try BuiltProduct.cdfsync.path, ["pipeline", "validate", "--offline", hostilePipeline("typo-filter.yaml")],
            environment: ["PATH": "/usr/bin:/bin", "HOME": dir.path])
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("line 6, column 1: filter: unknown field (did you mean filters?)"), "\(r.output)")
        #expect(!r.output.contains("pipeline is valid"))
    }
}
