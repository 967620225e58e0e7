Console.WriteLine("viscript: not implemented yet");
return 0;
