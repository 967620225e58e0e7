using System.Text.Json;
using System.Text.Json.Serialization;

namespace Viscript.Core.Control;

/// <summary>Source-generated JSON (camelCase, web defaults) for every control API contract.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(AppInfo))]
[JsonSerializable(typeof(List<AppInfo>))]
[JsonSerializable(typeof(ProcessInfo))]
[JsonSerializable(typeof(List<ProcessInfo>))]
[JsonSerializable(typeof(ProcessEvent))]
[JsonSerializable(typeof(ResourceReport))]
[JsonSerializable(typeof(CommandRequest))]
[JsonSerializable(typeof(CommandResponse))]
[JsonSerializable(typeof(StartRequest))]
[JsonSerializable(typeof(PingReport))]
[JsonSerializable(typeof(StopReport))]
[JsonSerializable(typeof(DaemonInfo))]
[JsonSerializable(typeof(LogLineInfo))]
[JsonSerializable(typeof(List<LogLineInfo>))]
[JsonSerializable(typeof(LogEndInfo))]
[JsonSerializable(typeof(ProblemBody))]
[JsonSerializable(typeof(InputRequest))]
[JsonSerializable(typeof(SampleSeries))]
[JsonSerializable(typeof(List<SampleSeries>))]
[JsonSerializable(typeof(TopologyView))]
[JsonSerializable(typeof(TopologyDocument))]
public sealed partial class ControlJsonContext : JsonSerializerContext;
