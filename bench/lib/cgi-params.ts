// A typical CGI environment as nginx sends it for a browser's GET (fastcgi_params + fastcgi.conf and
// the request's HTTP_* headers): 32 variables, about 1.4 KB encoded. Shared by the codec and client
// sections so both measure the same request.

/** The params for one GET of `scriptName` in `documentRoot`, as nginx would build them. */
export function typicalParams(documentRoot: string, scriptName: string): Record<string, string> {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'nginx/1.22.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'www.example.com',
    SERVER_ADDR: '127.0.0.1',
    SERVER_PORT: '443',
    REQUEST_SCHEME: 'https',
    HTTPS: 'on',
    REDIRECT_STATUS: '200',
    REMOTE_ADDR: '203.0.113.42',
    REMOTE_PORT: '51234',
    REQUEST_METHOD: 'GET',
    REQUEST_URI: `${scriptName}?page=2&sort=date`,
    DOCUMENT_URI: scriptName,
    SCRIPT_NAME: scriptName,
    SCRIPT_FILENAME: `${documentRoot}${scriptName}`,
    DOCUMENT_ROOT: documentRoot,
    QUERY_STRING: 'page=2&sort=date',
    CONTENT_TYPE: '',
    CONTENT_LENGTH: '',
    PATH_INFO: '',
    HTTP_HOST: 'www.example.com',
    HTTP_USER_AGENT: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    HTTP_ACCEPT: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
    HTTP_ACCEPT_LANGUAGE: 'en-GB,en;q=0.9,de;q=0.8',
    HTTP_ACCEPT_ENCODING: 'gzip, deflate, br, zstd',
    HTTP_CONNECTION: 'keep-alive',
    HTTP_UPGRADE_INSECURE_REQUESTS: '1',
    HTTP_SEC_FETCH_DEST: 'document',
    HTTP_SEC_FETCH_MODE: 'navigate',
    HTTP_REFERER: 'https://www.example.com/blog/?page=1&sort=date',
    HTTP_COOKIE:
      'PHPSESSID=9f1c2b7e4a6d8c0e3b5a7f9d1c3e5a7b; _ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; ' +
      'theme=dark; consent=analytics%3Dyes%26ads%3Dno; csrftoken=Xk3vJ9qL2mN8pR4tW6yZ0aB1cD5eF7gH9iJ2kL4mN6oP8qR0sT; ' +
      'remember_web_59ba36addc2b2f9401580f014c7f58ea4e30989d=eyJpdiI6IkV4YW1wbGVJVkV4YW1wbGUiLCJ2YWx1ZSI6IkV4YW1wbGVWYWx1ZSJ9',
  };
}
