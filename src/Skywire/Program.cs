Console.WriteLine("skywire: not implemented yet");
return 0;
