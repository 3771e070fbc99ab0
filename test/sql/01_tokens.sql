-- Token hashing, generation and device names.
CREATE EXTENSION sessrev;
\pset null '(null)'

-- hash_token is PostgreSQL's own SHA-256 of the UTF-8 bytes.
SELECT sessrev.hash_token('abc') = sha256(convert_to('abc', 'UTF8')) AS matches_sha256;
SELECT sessrev.hash_token('') = sha256(''::bytea) AS empty_matches;
SELECT sessrev.hash_token('žluťoučký kůň') = sha256(convert_to('žluťoučký kůň', 'UTF8')) AS utf8_matches;
SELECT encode(sessrev.hash_token('abc'), 'hex');
SELECT sessrev.hash_token(NULL) IS NULL AS null_in_null_out;

-- generate_token: base64url without padding, length from nbytes, never repeats.
SELECT length(sessrev.generate_token()) AS default_length,
       length(sessrev.generate_token(16)) AS len_16,
       length(sessrev.generate_token(17)) AS len_17,
       length(sessrev.generate_token(256)) AS len_256;
SELECT bool_and(t ~ '^[A-Za-z0-9_-]+$') AS base64url_alphabet
  FROM (SELECT sessrev.generate_token(n) AS t FROM generate_series(16, 256) n) g;
SELECT count(DISTINCT sessrev.generate_token()) AS distinct_of_1000 FROM generate_series(1, 1000);
-- decoding base64url gives back nbytes bytes
SELECT length(decode(translate(t, '-_', '+/') || repeat('=', (4 - length(t) % 4) % 4), 'base64')) AS decoded_bytes
  FROM (SELECT sessrev.generate_token(20) AS t) g;

-- device_from_user_agent
SELECT ua, sessrev.device_from_user_agent(ua) FROM (VALUES
  ('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'),
  ('Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1'),
  ('Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0'),
  ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0'),
  ('Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36'),
  ('Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1'),
  ('curl/8.4.0'),
  ('MyApp/1.0 (Linux)'),
  ('something else'),
  ('')) AS t(ua);
SELECT sessrev.device_from_user_agent(NULL);
