using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;
using static Skywire.Tests.Manager.TestMesh;

namespace Skywire.Tests.Manager;

/// <summary>Issue 12.2 (manager side): every list answer fits its frame, page by page; one that cannot is an error, never silence.</summary>
public class ManagerListingTests
{
    private static readonly ManagerLimits Limits = ManagerLimits.Default;

    private static AppListResultMessage Apps(int count, int seed)
    {
        var rng = new Random(seed);
        var apps = Enumerable.Range(0, count).Select(i => new AppInfo
        {
            Name = i.ToString("d5", System.Globalization.CultureInfo.InvariantCulture) + new string('n', 59),
            Type = new string('t', 64),
            Node = PubKey.Parse("02" + Convert.ToHexStringLower(BitConverter.GetBytes(rng.NextInt64())) + new string('0', 48)).ToString(),
        }).OrderBy(a => a.Name, StringComparer.Ordinal).ThenBy(a => a.Node, StringComparer.Ordinal).ToList();
        return new AppListResultMessage { Apps = apps, Total = apps.Count };
    }

    [Fact]
    public void Pages_CoverTheListOnceInOrder_EachUnderTheByteBudget()
    {
        var all = Apps(3000, 1);
        var seen = new List<AppInfo>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = ManagerListing.Page(all, after, 500, Limits);
            var size = JsonSerializer.SerializeToUtf8Bytes(page, ControlJsonContext.Default.AppListResultMessage).Length;
            Assert.InRange(size, 1, Limits.ReplyPageBytes);
            Assert.InRange(page.Apps.Count, 1, 500);
            Assert.Equal(3000, page.Total);
            seen.AddRange(page.Apps);
            after = page.Next;
            pages++;
        }
        while (after is not null);

        Assert.Equal(all.Apps, seen);
        Assert.True(pages > 3000 * 200 / Limits.ReplyPageBytes, $"{pages} pages: the byte budget did not cut them");
    }

    [Fact]
    public void Page_AfterTheListChanged_NeitherRepeatsNorSkipsWhatStayed()
    {
        var all = Apps(50, 2);
        var first = ManagerListing.Page(all, null, 20, Limits);
        // Meanwhile: an app before the cursor leaves, one before and one after it arrive.
        var changed = all.Apps.Skip(1).Append(new AppInfo { Name = "00000a", Type = "x", Node = Key('a').ToString() })
            .Append(new AppInfo { Name = "zzz", Type = "x", Node = Key('a').ToString() })
            .OrderBy(a => a.Name, StringComparer.Ordinal).ToList();
        var rest = new List<AppInfo>();
        var after = first.Next;
        while (after is not null)
        {
            var page = ManagerListing.Page(all with { Apps = changed }, after, 20, Limits);
            rest.AddRange(page.Apps);
            after = page.Next;
        }

        Assert.Equal([.. all.Apps.Skip(20).Select(a => a.Name), "zzz"], rest.Select(a => a.Name));
    }

    [Fact]
    public void Page_LimitIsCapped_AndMustBePositive()
    {
        var all = Apps(30, 3);
        Assert.Equal(7, ManagerListing.Page(all, null, 1000, Limits with { MaxPageItems = 7 }).Apps.Count);
        Assert.Equal(ControlErrorCode.BadRequest, Assert.Throws<ControlException>(() => ManagerListing.Page(all, null, 0, Limits)).Code);
        var last = ManagerListing.Page(all, all.Apps[^1].Name + " " + all.Apps[^1].Node, 10, Limits);
        Assert.Empty(last.Apps);
        Assert.Null(last.Next);
    }

    [Fact]
    public async Task Handler_UnpagedAnswerOverTheFrame_IsAReplyTooLargeError_PagedAnswersWork()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var controller = new MeshController(new ManagerOptions { Limits = Limits with { MaxAppsPerNode = 10_000 } }, log.CreateLogger("MeshController"));
        var node = Key('a');
        controller.NodeConnected(node, "127.0.0.1:1", new FakeNode(node));
        foreach (var app in Apps(6000, 4).Apps)
        {
            controller.RegisterApp(node, new AppRegisterMessage { Name = app.Name, Type = app.Type });
        }

        var handler = new ManagerRequestHandler(controller, Limits, log.CreateLogger("Requests"));
        var ct = TestContext.Current.CancellationToken;
        // As a cli that does not page (and as before the fix): the whole list, 1.6 MB, does not fit a 1 MiB frame.
        var tooLarge = await Assert.ThrowsAsync<ControlException>(async () => await handler.HandleCliAsync(Key('f'), (byte)ControlOpcode.AppList, "{}"u8.ToArray(), ct));
        Assert.Equal(ControlErrorCode.ReplyTooLarge, tooLarge.Code);
        Assert.Contains("page by page", tooLarge.Message, StringComparison.Ordinal);
        Assert.Contains(log.Entries, e => e.EventId.Id == 2210);
        await Assert.ThrowsAsync<ControlException>(async () => await handler.HandleNodeAsync(node, (byte)ControlOpcode.AppList, "{}"u8.ToArray(), ct));

        // Page by page, every answer fits the app API's frame too, and together they are the whole list.
        var names = new List<string>();
        string? after = null;
        do
        {
            var request = JsonSerializer.SerializeToUtf8Bytes(new AppListMessage { After = after, Limit = 1000 }, ControlJsonContext.Default.AppListMessage);
            var bytes = await handler.HandleNodeAsync(node, (byte)ControlOpcode.AppList, request, ct);
            Assert.True(bytes.Length <= Protocol.AppApi.AppApiProtocol.MaxFrameSize, $"{bytes.Length} bytes");
            var page = JsonSerializer.Deserialize(bytes, ControlJsonContext.Default.AppListResultMessage)!;
            names.AddRange(page.Apps.Select(a => a.Name));
            after = page.Next;
        }
        while (after is not null);

        Assert.Equal(6000, names.Distinct(StringComparer.Ordinal).Count());

        // The other lists take the old empty request (whole list) and a paged one alike.
        var nodes = JsonSerializer.Deserialize(await handler.HandleCliAsync(Key('f'), (byte)ControlOpcode.ListNodes, "{}"u8.ToArray(), ct), ControlJsonContext.Default.NodeListMessage)!;
        Assert.Equal((1, 1, (string?)null), (nodes.Nodes.Count, nodes.Total, nodes.Next));
        var paged = JsonSerializer.Deserialize(await handler.HandleCliAsync(Key('f'), (byte)ControlOpcode.ListLinks, """{"limit":5}"""u8.ToArray(), ct), ControlJsonContext.Default.LinkListMessage)!;
        Assert.Empty(paged.Links);
    }
}
