using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Supervision;

namespace Viscript.Tests.Commands;

public class CommandLineParserTests
{
    [Theory]
    [InlineData("start MyApp -Port 8000", new[] { "start", "MyApp", "-Port", "8000" })]
    [InlineData("  la   -f  ", new[] { "la", "-f" })]
    [InlineData("s app \"Hello World\" 'It''s'", new[] { "s", "app", "Hello World", "Its" })]
    [InlineData("s app \"a \\\"quoted\\\" b\"", new[] { "s", "app", "a \"quoted\" b" })]
    [InlineData("s app 'single \"keeps\" \\n'", new[] { "s", "app", "single \"keeps\" \\n" })]
    [InlineData("s app pre\"fix suf\"fix", new[] { "s", "app", "prefix suffix" })]
    [InlineData("s app \"\" ''", new[] { "s", "app", "", "" })]
    [InlineData("s app a\\ b", new[] { "s", "app", "a b" })]
    [InlineData("s\tapp\tx", new[] { "s", "app", "x" })]
    [InlineData("", new string[0])]
    public void Tokenize_SplitsLikeAShell_PreservingCase(string line, string[] expected) =>
        Assert.Equal(expected, CommandLineParser.Tokenize(line));

    [Theory]
    [InlineData("s app \"unterminated")]
    [InlineData("s app 'unterminated")]
    [InlineData("s app trailing\\")]
    public void Tokenize_BadQuoting_IsUsageError(string line)
    {
        var ex = Assert.Throws<ViscriptException>(() => CommandLineParser.Tokenize(line));
        Assert.Equal(ErrorCode.Usage, ex.Code);
    }

    [Fact]
    public void QuoteForDisplay_RoundTripsThroughTokenize()
    {
        string[] args = ["plain", "with space", "it's", "say \"hi\"", "", "tab\there", "back\\slash"];
        var line = string.Join(' ', args.Select(Supervisor.QuoteForDisplay));
        Assert.Equal(args, CommandLineParser.Tokenize(line));
    }

    [Fact]
    public void Tokenize_RandomInput_EitherParsesOrFailsWithUsage()
    {
        var random = new Random(1234);
        const string Alphabet = "ab \"'\\\t\nZ9-";
        for (var i = 0; i < 20_000; i++)
        {
            var chars = new char[random.Next(0, 24)];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = Alphabet[random.Next(Alphabet.Length)];
            }
            var line = new string(chars);
            try
            {
                var tokens = CommandLineParser.Tokenize(line);
                Assert.All(tokens, t => Assert.NotNull(t));
            }
            catch (ViscriptException ex)
            {
                Assert.Equal(ErrorCode.Usage, ex.Code);
            }
        }
    }

    [Fact]
    public void Tokenize_EveryPrefixOfAValidLine_NeverThrowsAnythingButUsage()
    {
        const string Line = "start -a \"My App\" 'x y' z\\ w \"esc \\\" q\"";
        for (var cut = 0; cut <= Line.Length; cut++)
        {
            try
            {
                CommandLineParser.Tokenize(Line[..cut]);
            }
            catch (ViscriptException ex)
            {
                Assert.Equal(ErrorCode.Usage, ex.Code);
            }
        }
    }
}
