<?php
// A webtalk backend in PHP (no extension needed): create a user, whisper to it, shout to everyone.
// Run:  WEBTALK_PRIVATE=127.0.0.1:12344 php backend.php

final class Webtalk
{
    /** @var resource */
    private $socket;

    public function __construct(string $host, int $port)
    {
        $socket = fsockopen($host, $port, $errno, $error, 10);
        if ($socket === false) {
            throw new RuntimeException("cannot reach webtalk at $host:$port: $error");
        }
        $this->socket = $socket;
    }

    /** Sends one frame (5 digits: the payload's length in bytes, then the payload); returns the data after "[ok] ". */
    public function call(string $command): string
    {
        fwrite($this->socket, sprintf('%05d', strlen($command)) . $command);
        $reply = $this->read((int) $this->read(5));
        if (strncmp($reply, '[ok] ', 5) !== 0) {
            throw new RuntimeException("webtalk: $command -> $reply");
        }
        return substr($reply, 5);
    }

    public function close(): void
    {
        fwrite($this->socket, '00000'); // goodbye
        fclose($this->socket);
    }

    private function read(int $length): string
    {
        $data = '';
        while (strlen($data) < $length) {
            $chunk = fread($this->socket, $length - strlen($data));
            if ($chunk === false || $chunk === '') {
                throw new RuntimeException('webtalk closed the connection');
            }
            $data .= $chunk;
        }
        return $data;
    }
}

// WEBTALK_PRIVATE as the server reads it (HOST:PORT or :PORT), else 127.0.0.1:12344.
$address = getenv('WEBTALK_PRIVATE') ?: '127.0.0.1:12344';
$colon = strrpos($address, ':');
$host = trim(substr($address, 0, $colon), '[]');
$port = (int) substr($address, $colon + 1);
if ($host === '' || $host === '0.0.0.0') {
    $host = '127.0.0.1';
}

$wt = new Webtalk($host, $port);
$token = $wt->call('[newuser]'); // ID!SALT: hand it to the user's page, which logs in with it
$user = explode('!', $token)[0];
echo "user $user: the page logs in with token $token\n";
echo "whisper to $user: " . $wt->call("[whisper] $user!Hello, user $user (from PHP)") . "\n";
echo 'shout to channel 1: ' . $wt->call('[shout] 1!Hello, everyone (from PHP)') . "\n";
$wt->close();
