using Viscript.Core.Config;

namespace Viscript.Core.Supervision;

/// <summary>What happens after a run ended on its own.</summary>
internal enum RestartAction
{
    /// <summary>Not restarted (policy, or daemon shutting down): Exited(code).</summary>
    Exit = 0,
    /// <summary>Restarted after <see cref="RestartDecision.Delay"/>: Backoff.</summary>
    Backoff = 10,
    /// <summary>Too many failures in a row: Fatal.</summary>
    Fatal = 20,
}

/// <summary>The restart policy's answer for one ended run.</summary>
/// <param name="Action">Exit, back off, or give up.</param>
/// <param name="Failures">Consecutive failures counted after this run (to keep for the next one).</param>
/// <param name="Delay">Backoff before the restart (zero unless <see cref="RestartAction.Backoff"/>).</param>
/// <param name="Reason">Text for the state change, naming the rule that decided.</param>
internal readonly record struct RestartDecision(RestartAction Action, int Failures, TimeSpan Delay, string Reason);

/// <summary>
/// The restart rule, pure (no clock, no process): given the app's options, how the run ended and the failures counted
/// so far, decide Exit, Backoff(delay) or Fatal.
/// <list type="bullet">
/// <item>The policy decides whether the run is restarted at all: <c>never</c>; <c>on-failure</c> after a non-zero exit;
/// <c>always</c> after any exit. Nothing restarts while the daemon shuts down.</item>
/// <item>A run shorter than <c>stable_secs</c> (never less than <c>start_secs</c>) is a failure — also one that got past
/// <c>start_secs</c>, so that an app crashing just after it backs off ever longer and ends Fatal instead of restarting
/// forever at a fixed interval. Failure n waits <c>backoff × 2^(n-1)</c>, capped at <c>backoff_max</c>; failure
/// <c>max_retries + 1</c> is Fatal.</item>
/// <item>A run that lasted <c>stable_secs</c> is not a failure: the count restarts at 0 and the restart waits <c>backoff</c>.</item>
/// </list>
/// </summary>
internal static class RestartPlanner
{
    /// <summary>Decides what follows a run of <paramref name="app"/> that ended on its own with <paramref name="exitCode"/> after <paramref name="uptime"/>.</summary>
    public static RestartDecision Decide(AppOptions app, int exitCode, TimeSpan uptime, int failuresSoFar, bool shuttingDown)
    {
        var restart = !shuttingDown && (app.Restart == RestartPolicy.Always || (app.Restart == RestartPolicy.OnFailure && exitCode != 0));
        if (!restart)
        {
            return new RestartDecision(RestartAction.Exit, failuresSoFar, TimeSpan.Zero, $"exited with code {exitCode}");
        }

        var stable = StableAfter(app);
        if (uptime >= stable)
        {
            // A stable run is not a failure: the count starts again, and the restart waits the first backoff step.
            var first = BackoffDelay(app, 1);
            return new RestartDecision(RestartAction.Backoff, 0, first,
                $"exited with code {exitCode} after a stable run ({uptime.TotalSeconds:0.#}s); restart in {first.TotalSeconds:0.###}s");
        }

        var failures = failuresSoFar + 1;
        if (failures > app.MaxRetries)
        {
            return new RestartDecision(RestartAction.Fatal, failures, TimeSpan.Zero,
                $"exited with code {exitCode}; gave up after {failures} quick failures in a row (runs shorter than stable_secs {stable.TotalSeconds:0.###}s; max_retries {app.MaxRetries})");
        }

        var delay = BackoffDelay(app, failures);
        return new RestartDecision(RestartAction.Backoff, failures, delay,
            $"exited with code {exitCode}; restart {failures}/{app.MaxRetries} in {delay.TotalSeconds:0.###}s");
    }

    /// <summary>Uptime after which a run counts as stable: <c>stable_secs</c>, never less than <c>start_secs</c>.</summary>
    public static TimeSpan StableAfter(AppOptions app) => app.StableSecs > app.StartSecs ? app.StableSecs : app.StartSecs;

    /// <summary>Backoff before restart n (1-based): backoff × 2^(n-1), capped at backoff_max.</summary>
    public static TimeSpan BackoffDelay(AppOptions app, int failure)
    {
        var factor = Math.Pow(2, Math.Clamp(failure - 1, 0, 30));
        var ticks = Math.Min(app.Backoff.Ticks * factor, app.BackoffMax.Ticks);
        return TimeSpan.FromTicks((long)ticks);
    }
}
