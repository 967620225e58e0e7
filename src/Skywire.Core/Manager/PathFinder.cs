namespace Skywire.Core.Manager;

/// <summary>
/// Dijkstra over the manager's small adjacency lists. Stand-in until Skywire.Core.Routing.RouteComputer
/// (streams) is on this branch; same inputs (weighted graph of node keys), same answer (shortest path).
/// </summary>
internal static class PathFinder
{
    public static List<string>? ShortestPath(Dictionary<string, List<(string To, double Weight)>> graph, string from, string to)
    {
        var dist = new Dictionary<string, double>(StringComparer.Ordinal) { [from] = 0 };
        var prev = new Dictionary<string, string>(StringComparer.Ordinal);
        var queue = new PriorityQueue<string, double>();
        queue.Enqueue(from, 0);
        while (queue.TryDequeue(out var node, out var d))
        {
            if (d > dist[node])
            {
                continue;
            }

            if (node == to)
            {
                break;
            }

            if (!graph.TryGetValue(node, out var edges))
            {
                continue;
            }

            foreach (var (next, w) in edges)
            {
                var nd = d + w;
                if (!dist.TryGetValue(next, out var old) || nd < old)
                {
                    dist[next] = nd;
                    prev[next] = node;
                    queue.Enqueue(next, nd);
                }
            }
        }

        if (!dist.ContainsKey(to))
        {
            return null;
        }

        var path = new List<string> { to };
        while (path[^1] != from)
        {
            path.Add(prev[path[^1]]);
        }

        path.Reverse();
        return path;
    }
}
